"""Check, before fusing, that fusion changes no number, and pick the fastest way that doesn't.

Expression models are element-wise and fuse bit for bit. Built-in networks go through
matrix products, and a batched product (``bmm``) does not always sum in the same order as
the product of one job alone: for some shapes the BLAS library takes another path. So the
worker first runs a short stretch of two of the jobs both ways, in each fused mode from the
fastest, and fuses in the first whose every recorded value is identical (a mode that fails
on these jobs, a shape it cannot broadcast say, is passed over); when none is, the jobs run
one by one and say why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from optimlab.worker.engine.data import DatasetSource
from optimlab.worker.engine.fused.loop import run_fused
from optimlab.worker.engine.fused.stacked import Mode, StackedProblem, modes
from optimlab.worker.engine.loop import run_training
from optimlab.worker.engine.sink import JobUpdate, ListSink, MetricPoint, column_points
from optimlab.worker.spec import JobSpec

PROBE_STEPS = 64


class _Collect:
    """Keeps the points of the jobs compared (the others only run alongside)."""

    def __init__(self, compared: list[int]) -> None:
        self.points: dict[int, list[MetricPoint]] = {index: [] for index in compared}

    def write(self, updates: Sequence[JobUpdate]) -> list[bool]:
        for index, columns, _ in updates:
            if index in self.points:
                self.points[index].extend(column_points(columns))
        return [True] * len(updates)


def choose_mode(specs: list[JobSpec], *, source: DatasetSource | None = None,
                built: StackedProblem | None = None) -> tuple[Mode | None, str | None]:
    """(the fastest mode whose short fused run equals the first and last job's runs alone,
    None) or (None, why no mode does).

    The fused probe runs every job, not just the two compared: element-wise kernels take
    a vectorised path for the bulk of a tensor and a scalar one for its tail, so which
    path a job's numbers go through depends on how many jobs are stacked. ``per_job``
    makes each job's own calls whatever the stack, so two jobs suffice there. ``built``:
    the specs' ``build_stacked``, when the caller has it (the probe runs fresh copies).
    """
    everyone = [_short(spec) for spec in specs]
    ends = [0, len(everyone) - 1]
    alone = []
    for index in ends:
        sink = ListSink()
        run_training(everyone[index], sink, source=source)
        alone.append(sink.points)
    differences = []
    for mode in modes(specs[0]):
        probed = [everyone[i] for i in ends] if mode == "per_job" else everyone
        compared = [0, len(probed) - 1]
        fused = _Collect(compared)
        try:
            run_fused(probed, fused, source=source, mode=mode,
                      built=None if mode == "per_job" else built)
        except Exception as exc:  # this mode cannot run these jobs: try the next
            differences.append(f"{mode}: fails ({type(exc).__name__}: {exc})")
            continue
        found = [d for points, i in zip(alone, compared, strict=True)
                 if (d := _first_difference(points, fused.points[i])) is not None]
        if not found:
            return mode, None
        differences.append(f"{mode}: {found[0]} differs")
    return None, (f"fusing changes the numbers of this model on this machine "
                  f"(in a {PROBE_STEPS}-step probe: {'; '.join(differences)})")


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
