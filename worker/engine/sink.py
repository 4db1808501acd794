"""Where the engine's metrics go: one small interface for a run of one job or many, which
the worker implements with SQL and tests with lists."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from optimlab.worker.outcomes import Outcome

# (step, name, value): one point of one series.
MetricPoint = tuple[int, str, float]
# The same points by series: name -> (steps, values), steps increasing. A fused run hands
# its batches over in this shape, which costs nothing per point to build or to store: the
# steps of a stretch of steps as a range, values it computed in tensors as a float array.
ColumnSteps = list[int] | range
ColumnValues = list[float] | npt.NDArray[np.floating[Any]]
SeriesColumns = dict[str, tuple[ColumnSteps, ColumnValues]]


def point_columns(points: list[MetricPoint]) -> SeriesColumns:
    """``points`` by series, each in the order given (a run records a series step by step)."""
    columns: dict[str, tuple[list[int], list[float]]] = {}
    for step, name, value in points:
        steps, values = columns.get(name) or columns.setdefault(name, ([], []))
        steps.append(step)
        values.append(value)
    return dict(columns)


def column_points(columns: SeriesColumns) -> list[MetricPoint]:
    """The points of ``columns`` one by one (Python ints and floats), series after series."""
    return [(step, name, value) for name, (steps, values) in columns.items()
            for step, value in zip(steps, as_floats(values), strict=True)]


def point_count(columns: SeriesColumns) -> int:
    return sum(len(steps) for steps, _ in columns.values())


def as_floats(values: ColumnValues) -> list[float]:
    return values.tolist() if isinstance(values, np.ndarray) else values


@dataclass
class TrainingSummary:
    """What a run amounts to; updated as it goes and final when it returns."""

    device: str
    parameter_count: int
    loss: str = "mse"  # the loss function the job trains with
    steps: int = 0  # the run's length in steps (epochs x batches per epoch when given epochs)
    steps_done: int = 0
    epochs_done: float = 0.0
    initial_loss: float | None = None
    final_loss: float | None = None
    best_loss: float | None = None
    best_step: int | None = None
    wall_seconds: float = 0.0
    steps_per_second: float | None = None
    outcome: Outcome = Outcome.RUNNING
    stop_reason: str | None = None
    diverged_at: int | None = None
    reached_at: int | None = None
    evaluation: dict[str, float] | None = None  # the latest train_loss_full, val_loss, ...
    best_val_loss: float | None = None
    best_val_step: int | None = None
    # First step whose loss is at most each threshold (None: never), the defaults' three
    # also as fields of their own; the area under log10(loss) over the steps (trapezoids).
    steps_to: list[dict[str, float | int | None]] = field(default_factory=list)
    steps_to_10x: int | None = None
    steps_to_100x: int | None = None
    steps_to_1000x: int | None = None
    loss_area_log10: float | None = None
    converged_at: int | None = None  # filled in from the stored history (the worker)
    checkpoint_step: int | None = None  # the step of the run's latest checkpoint
    resumed_from: int | None = None  # the checkpoint's step a resumed run went on from

    def conclude(self, outcome: Outcome, reason: str | None, step: int) -> None:
        """Record how the run ended, and at which step where the outcome has one."""
        if outcome == Outcome.DIVERGED:
            self.diverged_at = step
        elif outcome == Outcome.REACHED_TARGET:
            self.reached_at = step
        self.outcome, self.stop_reason = outcome, reason

    def as_dict(self) -> dict[str, Any]:
        """The fields as a dict, the mutable ones copied (``dataclasses.asdict``, without
        its recursion: a fused run stores a hundred of these per flush)."""
        out = {name: getattr(self, name) for name in _SUMMARY_FIELDS}
        if self.evaluation is not None:
            out["evaluation"] = dict(self.evaluation)
        out["steps_to"] = [dict(entry) for entry in self.steps_to]
        return out


_SUMMARY_FIELDS = tuple(f.name for f in fields(TrainingSummary))


# (the job's index in the run's specs, its new points by series, its summary so far). Each
# list in the columns is the sink's to keep: none is shared with another job or used again.
JobUpdate = tuple[int, SeriesColumns, TrainingSummary]


class MetricSink(Protocol):
    def write(self, updates: Sequence[JobUpdate]) -> list[bool]:
        """Store each job's new points and its progress; False for a job that must stop. A
        run of one job writes one update at a time, its index 0."""
        ...


class ListSink:
    """Keeps everything in memory, each job's points apart: for tests, benchmarks and
    notebooks. ``points``, ``summaries`` and ``series`` are those of job 0 (a run of one)."""

    def __init__(self) -> None:
        self.jobs: list[list[MetricPoint]] = []
        self.job_summaries: list[list[TrainingSummary]] = []

    def write(self, updates: Sequence[JobUpdate]) -> list[bool]:
        for index, columns, summary in updates:
            while len(self.jobs) <= index:
                self.jobs.append([])
                self.job_summaries.append([])
            self.jobs[index].extend(column_points(columns))
            self.job_summaries[index].append(summary)
        return [True] * len(updates)

    @property
    def points(self) -> list[MetricPoint]:
        return self.jobs[0] if self.jobs else []

    @property
    def summaries(self) -> list[TrainingSummary]:
        return self.job_summaries[0] if self.job_summaries else []

    def series(self, name: str) -> list[float]:
        return [value for _, n, value in sorted(self.points) if n == name]
