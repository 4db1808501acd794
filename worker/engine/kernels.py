"""The engine's one entry for a run of one job or many, and the one place that chooses how
the jobs run.

As torch.optim's functional optimizers run the same arithmetic through a single-tensor or
a multi-tensor kernel, a group of jobs runs through one of two kernels: one by one
(loop.py, the seed's loop) or fused (fused/loop.py: one stacked step for every job, in the
fastest mode the exactness probe finds identical to the jobs alone). Either way each job's
numbers are those of the job alone, and its points reach the one sink contract (sink.py)
under its index in the specs.
"""

from __future__ import annotations

from dataclasses import dataclass

from optimlab.worker.engine.data import DatasetSource
from optimlab.worker.engine.devices import DeviceUnavailable, resolve_device
from optimlab.worker.engine.fused.loop import run_fused
from optimlab.worker.engine.fused.plan import fusion_key
from optimlab.worker.engine.fused.probe import choose_mode
from optimlab.worker.engine.fused.stacked import Mode, StackedProblem, build_stacked
from optimlab.worker.engine.loop import run_training
from optimlab.worker.engine.sink import MetricSink, TrainingSummary
from optimlab.worker.spec import JobSpec

ONE_JOB = "a single job runs alone"
NOT_ASKED = "fusing was not asked for (fuse: false)"


@dataclass(frozen=True)
class FusedKernel:
    mode: Mode
    built: StackedProblem  # the stacked problem the probe ran, for the run to start from


def choose_kernel(specs: list[JobSpec], *, source: DatasetSource | None = None,
                  resuming: bool = False) -> tuple[FusedKernel | None, str | None]:
    """(the fused kernel, None), or (None, why the jobs run one by one). A single job runs
    fused only when it resumes a fused run's checkpoint (``resuming``)."""
    if len(specs) < 2 and not resuming:
        return None, ONE_JOB
    keys = {fusion_key(spec) for spec in specs}
    if len(keys) != 1 or next(iter(keys))[0] is None:
        return None, "the jobs do not share a fusion key"
    try:
        device = resolve_device(specs[0].device)
    except DeviceUnavailable as exc:
        return None, str(exc)
    if device.type != "cpu":
        # torch.optim's CUDA default is its foreach implementation, which the fused
        # optimizers do not mirror (they reproduce the single-tensor one, bit for bit).
        return None, "fused runs are CPU-only: on CUDA each job runs alone"
    try:
        built = build_stacked(specs, device=device, source=source)
        mode, reason = choose_mode(specs, source=source, built=built)
    except Exception as exc:  # a spec the stacked build cannot take: each runs alone
        return None, f"the exactness probe failed: {exc}"
    return (None, reason) if mode is None else (FusedKernel(mode, built), None)


def train(specs: list[JobSpec], sink: MetricSink, *, fuse: bool = True,
          flush_seconds: float = 0.5, source: DatasetSource | None = None
          ) -> list[TrainingSummary]:
    """Train every spec, each job's points written to ``sink`` under its index; return the
    summaries in the specs' order. ``fuse=False`` runs the jobs one by one whatever could
    fuse (a sweep's ``fuse: false``)."""
    kernel, _ = choose_kernel(specs, source=source) if fuse else (None, NOT_ASKED)
    if kernel is not None:
        return run_fused(specs, sink, flush_seconds=flush_seconds, source=source,
                         mode=kernel.mode, built=kernel.built)
    return [run_training(spec, sink, flush_seconds=flush_seconds, source=source, index=index)
            for index, spec in enumerate(specs)]
