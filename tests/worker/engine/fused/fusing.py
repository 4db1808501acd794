"""Run specs fused and alone, and compare every job's history and outcome."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from optimlab.worker.engine.fused.loop import run_fused
from optimlab.worker.engine.fused.probe import choose_mode
from optimlab.worker.engine.sink import (
    JobUpdate,
    MetricPoint,
    SeriesColumns,
    TrainingSummary,
    column_points,
)
from optimlab.worker.spec import JobSpec
from tests.seed_table import SEED_SPEC
from tests.worker.engine.histories import History, assert_same_history, engine_history

PROBLEMS: dict[str, dict[str, Any]] = {
    "seed": {**SEED_SPEC, "steps": 120},
    "rosenbrock": {"model": {"kind": "expression",
                             "expression": "(1 - x)**2 + 100*(y - x**2)**2",
                             "parameters": {"x": [-1.5], "y": [2.0]}},
                   "loss": "none", "steps": 120},
    "linreg": {"model": {"kind": "linear"},
               "data": {"kind": "synthetic", "generator": "linear", "samples": 64,
                        "features": 3, "val_fraction": 0.25},
               "batch_size": 8, "steps": 60, "eval_every": 20},
    "mlp": {"model": {"kind": "mlp", "hidden": [16]},
            "data": {"kind": "synthetic", "generator": "moons", "samples": 96,
                     "val_fraction": 0.25},
            "batch_size": 16, "steps": 60, "eval_every": 20},
}
# Rosenbrock needs smaller steps than the others to stay finite.
LR_SCALE = {"seed": 1.0, "rosenbrock": 0.02, "linreg": 1.0, "mlp": 10.0}


class CollectingSink:
    """A MetricSink that keeps every job's points; ``stop`` names jobs to cancel."""

    def __init__(self, jobs: int, stop: Sequence[int] = ()) -> None:
        self.points: list[list[MetricPoint]] = [[] for _ in range(jobs)]
        self.summaries: list[TrainingSummary | None] = [None] * jobs
        self.stop = set(stop)

    def write(self, updates: Sequence[JobUpdate]) -> list[bool]:
        for index, columns, summary in updates:
            check_columns(columns)
            self.points[index].extend(column_points(columns))
            self.summaries[index] = summary
        return [index not in self.stop for index, _, _ in updates]

    def in_step_order(self) -> list[list[MetricPoint]]:
        """Every job's points by step and name: the order they arrive in depends on when
        the recorder flushed, which is a matter of wall time (seen under CPU load)."""
        return [sorted(points) for points in self.points]

    def history(self, index: int) -> History:
        names = sorted({name for _, name, _ in self.points[index]})
        return {name: [v for _, n, v in sorted(self.points[index]) if n == name]
                for name in names}


def check_columns(columns: SeriesColumns) -> None:
    """The sink contract: per series, increasing int steps (a list, or a range of step 1)
    and as many float values (a list of floats, or a 1-D float array)."""
    for name, (steps, values) in columns.items():
        assert steps, name
        assert len(steps) == len(values), name
        if isinstance(steps, range):
            assert steps.step == 1, name
        assert all(type(step) is int for step in steps), name
        if isinstance(values, np.ndarray):
            assert values.ndim == 1, name
            assert values.dtype in (np.float32, np.float64), name
        else:
            assert all(type(value) is float for value in values), name
        assert all(a < b for a, b in itertools.pairwise(steps)), name


def grid(base: dict[str, Any], optimizer: dict[str, Any], axis: str,
         values: Sequence[Any], lrs: Sequence[float], *, schedule: dict[str, Any] | None = None,
         schedule_axis: str | None = None) -> list[dict[str, Any]]:
    """lr x (one other hyperparameter) x seeds 0 and 1."""
    specs = []
    for lr, value, seed in itertools.product(lrs, values, (0, 1)):
        opt = {**optimizer, "lr": lr}
        sched = None if schedule is None else dict(schedule)
        if schedule_axis is None:
            opt[axis] = value
        else:
            assert sched is not None
            sched[schedule_axis] = value
        specs.append({**base, "seed": seed, "optimizer": opt, "schedule": sched})
    return specs


def run_both(raw: list[dict[str, Any]], *, stop: Sequence[int] = (),
             flush_seconds: float = 0.5) -> tuple[
        CollectingSink, list[TrainingSummary], list[tuple[History, TrainingSummary]]]:
    specs = [JobSpec.model_validate(r) for r in raw]
    mode, reason = choose_mode(specs)  # as the worker does
    assert mode is not None, reason
    sink = CollectingSink(len(specs), stop=stop)
    summaries = run_fused(specs, sink, flush_seconds=flush_seconds, mode=mode)
    alone = [engine_history(r) for r in raw]
    return sink, summaries, alone


def assert_fused_equals_alone(raw: list[dict[str, Any]]) -> float:
    """Every job's history within 1e-6 relative of its run alone; return the worst deviation."""
    sink, summaries, alone = run_both(raw)
    worst = 0.0
    for index, (history, summary) in enumerate(alone):
        worst = max(worst, assert_same_history(sink.history(index), history))
        fused = summaries[index]
        assert (fused.outcome, fused.steps_done, fused.diverged_at) == \
            (summary.outcome, summary.steps_done, summary.diverged_at), index
        assert fused.best_loss == summary.best_loss
        assert fused.steps_to == summary.steps_to
    return worst
