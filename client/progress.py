"""A job's and a sweep's progress, read off their event streams."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from optimlab.client.events import Event

FINISHED = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class Progress:
    """Where a job is: ``step`` of ``steps`` done (``steps`` is None until the run has
    started), the latest loss (None before the first point, or NaN/infinite), the status."""

    job_id: str
    step: int = 0
    steps: int | None = None
    loss: float | None = None
    status: str = "queued"


@dataclass
class JobTracker:
    """Folds a job's events into its :class:`Progress`."""

    current: Progress

    def update(self, event: Event) -> Progress | None:
        """The progress after ``event``, or None when it changed nothing."""
        before = self.current
        if event.event == "status":
            self.current = _with_status(before, event.data)
        elif event.event == "reset":
            self.current = replace(before, step=0, loss=None)
        elif event.event == "metrics":
            self.current = _with_points(before, event.data)
        return self.current if self.current != before else None


def _with_status(progress: Progress, data: dict[str, Any]) -> Progress:
    summary = data.get("summary") or {}
    steps = summary.get("steps") or progress.steps
    done = summary.get("steps_done")
    return replace(progress, status=data.get("status") or progress.status, steps=steps,
                   step=max(progress.step, done) if isinstance(done, int) else progress.step)


def _with_points(progress: Progress, data: dict[str, Any]) -> Progress:
    last = max((s["steps"][-1] for s in data["series"] if s["steps"]), default=None)
    if last is None:
        return progress
    loss = next((s["values"][-1] for s in data["series"]
                 if s["name"] == "loss" and s["steps"] and s["steps"][-1] == last), None)
    # A stream opened mid-run starts with the status's steps_done, then sends the points
    # from step 0: the step shown never goes back.
    return replace(progress, step=max(progress.step, last + 1), loss=loss)


@dataclass(frozen=True)
class SweepProgress:
    """How many of the sweep's ``size`` jobs are over, and its jobs' counts by status."""

    sweep_id: str
    size: int
    finished: int
    counts: dict[str, int]


@dataclass
class SweepTracker:
    """Folds a sweep's events (status events per job) into its :class:`SweepProgress`."""

    sweep_id: str
    size: int
    statuses: dict[str, str] = field(default_factory=dict)

    def update(self, event: Event) -> SweepProgress | None:
        if event.event != "status":
            return None
        job, status = str(event.data.get("job_id")), str(event.data.get("status"))
        if self.statuses.get(job) == status:
            return None
        self.statuses[job] = status
        return self.current()

    def current(self) -> SweepProgress:
        counts: dict[str, int] = {}
        for status in self.statuses.values():
            counts[status] = counts.get(status, 0) + 1
        finished = sum(counts.get(s, 0) for s in FINISHED)
        return SweepProgress(self.sweep_id, self.size, finished, counts)
