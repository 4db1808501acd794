"""Check, before fusing, that fusion changes no number, and pick the fastest way that doesn't.

Expression models are element-wise and fuse bit for bit. Built-in networks go through
matrix products, and a batched product (``bmm``) does not always sum in the same order as
the product of one job alone: for some shapes the BLAS library takes another path. So the
worker first runs a short stretch of two of the jobs both ways, in each fused mode from the
fastest, and fuses in the first whose every recorded value is identical; when none is, the
jobs run one by one and say why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from optimlab.worker.engine.data import DatasetSource
from optimlab.worker.engine.fused.loop import JobUpdate, run_fused
from optimlab.worker.engine.fused.stacked import Mode, modes
from optimlab.worker.engine.loop import run_training
from optimlab.worker.engine.sink import ListSink, MetricPoint, column_points
from optimlab.worker.spec import JobSpec

PROBE_STEPS = 64


class _Collect:
    def __init__(self, jobs: int) -> None:
        self.points: list[list[MetricPoint]] = [[] for _ in range(jobs)]

    def write(self, updates: Sequence[JobUpdate]) -> list[bool]:
        for index, columns, _ in updates:
            self.points[index].extend(column_points(columns))
        return [True] * len(updates)


def choose_mode(specs: list[JobSpec], *, source: DatasetSource | None = None
                ) -> tuple[Mode | None, str | None]:
    """(the fastest mode whose short fused run of the first and last job equals their runs
    alone, None) or (None, why no mode does)."""
    sample = [_short(spec) for spec in (specs[0], specs[-1])]
    alone = []
    for spec in sample:
        sink = ListSink()
        run_training(spec, sink, source=source)
        alone.append(sink.points)
    differences = []
    for mode in modes(specs[0]):
        fused = _Collect(len(sample))
        run_fused(sample, fused, source=source, mode=mode)
        found = [d for i, points in enumerate(alone)
                 if (d := _first_difference(points, fused.points[i])) is not None]
        if not found:
            return mode, None
        differences.append(f"{mode}: {found[0]}")
    return None, (f"fusing changes the numbers of this model on this machine "
                  f"({'; '.join(differences)} differs in a {PROBE_STEPS}-step probe)")


def _short(spec: JobSpec) -> JobSpec:
    """The job cut to its first steps, with one evaluation if it evaluates; no stopping."""
    steps = PROBE_STEPS if spec.steps is None else min(spec.steps, PROBE_STEPS)
    return spec.model_copy(update={
        "steps": steps, "epochs": None, "stop": None, "diverge_factor": None,
        "eval_every": None if spec.eval_every is None else steps})


def _first_difference(alone: list[MetricPoint], fused: list[MetricPoint]) -> str | None:
    ours = {(step, name): value for step, name, value in fused}
    theirs = {(step, name): value for step, name, value in alone}
    if ours.keys() != theirs.keys():
        return "the set of recorded values"
    for key in sorted(theirs):
        a, b = theirs[key], ours[key]
        if a != b and not (math.isnan(a) and math.isnan(b)):
            return f"{key[1]} at step {key[0]}"
    return None
