"""Where the engine's metrics go: a small interface the worker implements with SQL."""

from __future__ import annotations

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


def column_points(columns: SeriesColumns) -> list[MetricPoint]:
    """The points of ``columns`` one by one (Python ints and floats), series after series."""
    return [(step, name, value) for name, (steps, values) in columns.items()
            for step, value in zip(steps, as_floats(values), strict=True)]


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


class MetricSink(Protocol):
    def write(self, points: list[MetricPoint], summary: TrainingSummary) -> bool:
        """Store ``points`` (and the progress so far); return False to stop the run."""
        ...


class ListSink:
    """Keeps everything in memory: for tests, benchmarks and notebooks."""

    def __init__(self) -> None:
        self.points: list[MetricPoint] = []
        self.summaries: list[TrainingSummary] = []

    def write(self, points: list[MetricPoint], summary: TrainingSummary) -> bool:
        self.points.extend(points)
        self.summaries.append(summary)
        return True

    def series(self, name: str) -> list[float]:
        return [value for _, n, value in sorted(self.points) if n == name]
