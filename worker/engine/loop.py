"""The training loop: a job spec in, metrics out through a sink.

Read it next to the plain loop it reproduces, step for step::

    for i in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(batch), targets)   # record loss and lr here
        loss.backward()
        opt.step()                               # record tiny models' parameters here
        scheduler.step()                         # ReduceLROnPlateau: scheduler.step(loss)

No database, no Celery: the worker wraps this with a SQL sink, tests and
benchmarks with an in-memory one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ReduceLROnPlateau

from optimlab.worker.engine.batches import batches
from optimlab.worker.engine.devices import resolve_device
from optimlab.worker.engine.problem import Batch, Problem, build_problem
from optimlab.worker.engine.registry import (
    Scheduler,
    build_optimizer,
    build_scheduler,
    needs_closure,
)
from optimlab.worker.engine.sink import MetricPoint, MetricSink, TrainingSummary
from optimlab.worker.spec import JobSpec

# Parameters are recorded every step only for models this small (the seed's table).
MAX_RECORDED_PARAMETERS = 16
FLUSH_POINTS = 20_000


class Recorder:
    """Buffers points and hands them to the sink every ``flush_seconds``."""

    def __init__(self, sink: MetricSink, summary: TrainingSummary, *, flush_seconds: float,
                 clock: Callable[[], float]) -> None:
        self.sink = sink
        self.summary = summary
        self.flush_seconds = flush_seconds
        self.clock = clock
        self.started = clock()
        self.next_flush = self.started + flush_seconds
        self.points: list[MetricPoint] = []

    def loss(self, step: int, value: float) -> None:
        self.points.append((step, "loss", value))
        summary = self.summary
        summary.steps_done = step + 1
        summary.final_loss = value
        if step == 0:
            summary.initial_loss = value
        if math.isfinite(value) and (summary.best_loss is None or value < summary.best_loss):
            summary.best_loss, summary.best_step = value, step

    def due(self) -> bool:
        return len(self.points) >= FLUSH_POINTS or self.clock() >= self.next_flush

    def flush(self) -> bool:
        """Hand the buffer to the sink; False when the sink asks the run to stop."""
        now = self.clock()
        self.summary.wall_seconds = now - self.started
        if self.summary.wall_seconds > 0:
            self.summary.steps_per_second = self.summary.steps_done / self.summary.wall_seconds
        points, self.points = self.points, []
        self.next_flush = now + self.flush_seconds
        return self.sink.write(points, self.summary)


def run_training(spec: JobSpec, sink: MetricSink, *, flush_seconds: float = 0.5,
                 clock: Callable[[], float] = time.perf_counter) -> TrainingSummary:
    """Train as ``spec`` says, writing every step's metrics to ``sink``; return the summary."""
    device = resolve_device(spec.device)
    torch.manual_seed(spec.seed)
    problem = build_problem(spec, device=device)
    optimizer = build_optimizer(spec.optimizer, problem.parameters.values())
    scheduler = (build_scheduler(spec.schedule, optimizer, steps=spec.steps)
                 if spec.schedule is not None else None)
    summary = TrainingSummary(device=str(device), parameter_count=problem.parameter_count)
    recorder = Recorder(sink, summary, flush_seconds=flush_seconds, clock=clock)
    step_once = _closure_step if needs_closure(type(optimizer)) else _plain_step
    recorded = _recorded_parameters(problem)
    rows = batches(problem.size, spec.batch_size, seed=spec.seed, device=device)

    outcome = "completed"
    for step in range(spec.steps):
        lr = float(optimizer.param_groups[0]["lr"])
        loss = step_once(problem, optimizer, next(rows), recorder, step, lr)
        if not math.isfinite(loss):
            outcome, summary.diverged_at = "diverged", step
            break
        for tensor, names in recorded:
            _record_parameter(tensor, names, step, recorder.points)
        if scheduler is not None:
            _scheduler_step(scheduler, loss)
        if recorder.due() and not recorder.flush():
            outcome = "cancelled"
            break
    summary.outcome = outcome
    recorder.flush()
    return summary


def _plain_step(problem: Problem, optimizer: Optimizer, batch: Batch, recorder: Recorder,
                step: int, lr: float) -> float:
    optimizer.zero_grad()
    loss = problem.objective(batch)
    value = loss.item()
    recorder.loss(step, value)
    recorder.points.append((step, "lr", lr))
    if not math.isfinite(value):
        return value
    loss.backward()
    optimizer.step()
    return value


def _closure_step(problem: Problem, optimizer: Optimizer, batch: Batch, recorder: Recorder,
                  step: int, lr: float) -> float:
    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = problem.objective(batch)
        loss.backward()
        return loss

    # The optimizer returns the loss its closure computed first: the one before the update.
    value = float(optimizer.step(closure).detach())  # type: ignore[arg-type, attr-defined]
    recorder.loss(step, value)
    recorder.points.append((step, "lr", lr))
    return value


def _recorded_parameters(problem: Problem) -> list[tuple[torch.Tensor, list[str]]]:
    """Each parameter with the names of its series; none for models too big to record."""
    if problem.parameter_count > MAX_RECORDED_PARAMETERS:
        return []
    return [(tensor, [f"param.{name}"] if tensor.numel() == 1 else
             [f"param.{name}.{k}" for k in range(tensor.numel())])
            for name, tensor in problem.parameters.items()]


def _record_parameter(tensor: torch.Tensor, names: list[str], step: int,
                      points: list[MetricPoint]) -> None:
    if len(names) == 1:
        points.append((step, names[0], tensor.item()))
    else:
        points.extend(zip([step] * len(names), names, tensor.detach().reshape(-1).tolist(),
                          strict=True))


def _scheduler_step(scheduler: Scheduler, loss: float) -> None:
    if isinstance(scheduler, ReduceLROnPlateau):
        scheduler.step(loss)
    else:
        scheduler.step()
