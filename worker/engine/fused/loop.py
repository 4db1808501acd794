"""The fused training loop: many jobs, one vectorised step, each job's history its own.

Step for step it is worker/engine/loop.py's loop, for every job at once: the same
records in the same order, the same stopping rules per job. A job that ends (diverged,
reached its target, stopped, cancelled through its sink) is dropped from the stacked
tensors; the others go on untouched, because no operation mixes jobs.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from optimlab.worker.engine.data import DatasetSource
from optimlab.worker.engine.devices import resolve_device
from optimlab.worker.engine.fused.optimizers import FusedOptimizer, fused_optimizer
from optimlab.worker.engine.fused.rows import job_rows
from optimlab.worker.engine.fused.schedule import ScheduleTrack, schedule_tracks
from optimlab.worker.engine.fused.stacked import Mode, StackedProblem, build_stacked
from optimlab.worker.engine.loop import plan_length
from optimlab.worker.engine.recorder import Recorder
from optimlab.worker.engine.sink import MetricPoint, TrainingSummary
from optimlab.worker.engine.stopping import Ending, StopRules
from optimlab.worker.engine.training import MAX_RECORDED_PARAMETERS
from optimlab.worker.spec import JobSpec

# (job index in the specs, its new points, its summary so far)
JobUpdate = tuple[int, list[MetricPoint], TrainingSummary]


class FusedSink(Protocol):
    def write(self, updates: Sequence[JobUpdate]) -> list[bool]:
        """Store each job's points and progress; False for a job that must stop."""
        ...


class _Buffer:
    """A Recorder's sink that keeps the batch for the fused sink to write with the others."""

    def __init__(self) -> None:
        self.points: list[MetricPoint] = []

    def write(self, points: list[MetricPoint], summary: TrainingSummary) -> bool:
        self.points = points
        return True


@dataclass
class FusedJob:
    index: int
    spec: JobSpec
    track: ScheduleTrack
    recorder: Recorder
    buffer: _Buffer
    stops: StopRules
    ending: Ending | None = None
    update_norm: float = math.nan

    @property
    def summary(self) -> TrainingSummary:
        return self.recorder.summary


def run_fused(specs: list[JobSpec], sink: FusedSink, *, flush_seconds: float = 0.5,
              clock: Callable[[], float] = time.perf_counter,
              source: DatasetSource | None = None, mode: Mode | None = None
              ) -> list[TrainingSummary]:
    """Train every spec (they must share all but optimizer options, schedule and seed; see
    plan.fusion_key) as one run; return each job's summary, in the specs' order. ``mode``:
    how the model runs fused (stacked.modes; default the fastest)."""
    device = resolve_device(specs[0].device)
    problem = build_stacked(specs, device=device, source=source, mode=mode)
    first = specs[0]
    steps, per_epoch = plan_length(first, problem.train.rows)
    optimizer = fused_optimizer(first.optimizer.name,
                                [spec.optimizer.kwargs for spec in specs], problem.params)
    tracks = schedule_tracks(specs, steps=steps)
    jobs = [_job(i, spec, track, problem, steps, str(device), flush_seconds, clock)
            for i, (spec, track) in enumerate(zip(specs, tracks, strict=True))]
    run = _Run(problem, optimizer, jobs, sink, steps)
    rows = job_rows(problem.train.rows, first.batch_size, [s.seed for s in specs],
                    drop_last=first.drop_last, device=device)
    for step in range(steps):
        batch = next(rows)
        run.step(step, None if batch is None else batch[run.alive], last=step == steps - 1)
        for job in run.active:
            job.summary.epochs_done = (step + 1) / per_epoch
        run.flush_if_due()
        run.drop_ended(step)
        if not run.active:
            break
    run.finish()
    return [job.summary for job in jobs]


def _job(index: int, spec: JobSpec, track: ScheduleTrack, problem: StackedProblem,
         steps: int, device: str, flush_seconds: float,
         clock: Callable[[], float]) -> FusedJob:
    summary = TrainingSummary(device=device, parameter_count=problem.parameter_count,
                              loss=problem.plan.name, steps=steps)
    buffer = _Buffer()
    recorder = Recorder(buffer, summary, flush_seconds=flush_seconds, clock=clock,
                        thresholds=spec.summary.thresholds)
    return FusedJob(index, spec, track, recorder, buffer, StopRules(spec))


class _Run:
    def __init__(self, problem: StackedProblem, optimizer: FusedOptimizer, jobs: list[FusedJob],
                 sink: FusedSink, steps: int) -> None:
        self.problem = problem
        self.optimizer = optimizer
        self.active = list(jobs)
        self.ended: list[FusedJob] = []
        self.sink = sink
        self.steps = steps
        self.alive = torch.arange(len(jobs), device=problem.params[0].device)
        self.row_names = ["grad_norm", "update_norm", "param_norm", *_recorded_names(problem)]
        self.recorded = len(self.row_names) > 3

    def step(self, i: int, rows: torch.Tensor | None, *, last: bool) -> None:
        params = self.problem.params
        before = [p.detach().clone() for p in params]
        losses = self.problem.losses(rows)
        self._record_loss(i, losses.tolist())
        if all(job.ending is not None for job in self.active):
            return
        losses.sum().backward()
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        grad_norm = job_norms(grads)
        track = [job.track for job in self.active]
        key = track[0].momentum_key
        cycled = None if key is None else [t.momentum[i] for t in track]  # type: ignore[index]
        self.optimizer.step(grads, [t.lr[i] for t in track],
                            momentum=cycled if key == "momentum" else None,
                            beta1=cycled if key == "beta1" else None)
        for p in params:
            p.grad = None
        self._record_after_update(i, grad_norm, before)
        self._evaluate(i, last=last)

    def _record_loss(self, i: int, values: list[float]) -> None:
        """What the schedule set, the loss, and the checks a job alone makes on its loss."""
        for job, value in zip(self.active, values, strict=True):
            track, recorder = job.track, job.recorder
            recorder.points.append((i, "lr", track.lr[i]))
            if track.momentum_key is not None and track.momentum is not None:
                recorder.points.append((i, track.momentum_key, track.momentum[i]))
            recorder.loss(i, value)
            if job.stops.watches_loss or not math.isfinite(value):
                job.ending = job.stops.after_loss(i, value)

    def _record_after_update(self, i: int, grad_norm: torch.Tensor,
                             before: list[torch.Tensor]) -> None:
        current = [p.detach() for p in self.problem.params]
        update = job_norms([c - b for c, b in zip(current, before, strict=True)])
        columns = [grad_norm.unsqueeze(1), update.unsqueeze(1), job_norms(current).unsqueeze(1)]
        if self.recorded:
            columns += [c.reshape(c.shape[0], -1) for c in current]
        table = torch.cat(columns, dim=1).tolist()
        names = self.row_names
        for job, row in zip(self.active, table, strict=True):
            if job.ending is not None:
                continue  # it ended at its loss: a job alone records nothing more this step
            job.recorder.points.extend(zip(itertools.repeat(i), names, row))
            job.update_norm = row[1]

    def _evaluate(self, i: int, *, last: bool) -> None:
        every = self.active[0].spec.eval_every
        due = every is not None and ((i + 1) % every == 0 or last)
        results: list[tuple[str, list[float], str, list[float] | None]] = []
        for prefix, part in (("train", self.problem.train), ("val", self.problem.val)):
            if not due or part is None:
                continue
            loss, hits = self.problem.evaluate(part)
            accuracy = None if hits is None else [h / part.rows for h in hits.tolist()]
            results.append(("train_loss_full" if prefix == "train" else "val_loss",
                            loss.tolist(), f"{prefix}_accuracy", accuracy))
        for k, job in enumerate(self.active):
            if job.ending is not None or not (due or job.stops.watches_steps):
                continue
            values: dict[str, float] = {}
            for loss_name, losses, accuracy_name, accuracies in results:
                values[loss_name] = losses[k]
                if accuracies is not None:
                    values[accuracy_name] = accuracies[k]
            if due:
                job.recorder.evaluation(i, values)
            job.ending = job.stops.after_step(values.get("val_loss"), job.update_norm,
                                              job.recorder.elapsed())

    def flush_if_due(self) -> None:
        live = [job for job in self.active if job.ending is None]
        if not live or not live[0].recorder.due():
            return
        for job, keep_going in zip(live, self._write(live), strict=True):
            if not keep_going:
                job.ending = ("cancelled", None)

    def _write(self, jobs: list[FusedJob]) -> list[bool]:
        for job in jobs:
            job.recorder.flush()
        updates = [(job.index, job.buffer.points, job.summary) for job in jobs]
        return self.sink.write(updates)

    def drop_ended(self, step: int) -> None:
        ending = [job for job in self.active if job.ending is not None]
        if not ending:
            return
        for job in ending:
            assert job.ending is not None
            job.summary.conclude(*job.ending, step)
        self._write(ending)
        keep = [k for k, job in enumerate(self.active) if job.ending is None]
        self.ended += ending
        self.active = [self.active[k] for k in keep]
        if not keep:
            return
        rows = torch.tensor(keep, device=self.alive.device)
        self.alive = self.alive[rows]
        self.problem.keep(rows)
        self.optimizer.keep(rows, self.problem.params)

    def finish(self) -> None:
        for job in self.active:
            job.summary.conclude("completed", None, self.steps - 1)
        if self.active:
            self._write(self.active)


def job_norms(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Each job's global L2 norm over its slice of every tensor: ``total_norm`` per job."""
    per_tensor = [torch.linalg.vector_norm(t.reshape(t.shape[0], -1), dim=1) for t in tensors]
    total: torch.Tensor = torch.linalg.vector_norm(torch.stack(per_tensor, dim=1), dim=1)
    return total


def _recorded_names(problem: StackedProblem) -> list[str]:
    if problem.parameter_count > MAX_RECORDED_PARAMETERS:
        return []
    names = []
    for name, tensor in zip(problem.user_names, problem.params, strict=True):
        count = tensor[0].numel()
        names += [f"param.{name}"] if count == 1 else [f"param.{name}.{k}" for k in range(count)]
    return names
