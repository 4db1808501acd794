"""The training loop: a job spec in, metrics out through a sink.

Read it next to the plain loop it reproduces, step for step::

    for i in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(inputs[batch]), targets[batch])  # record loss and lr
        loss.backward()
        clip_grad_norm_(params, max_norm)                      # if asked; record grad_norm
        opt.step()                                             # record update_norm, param_norm
                                                               # and tiny models' parameters
        if (i + 1) % eval_every == 0: evaluate                 # train_loss_full, val_loss, ...
        scheduler.step()             # ReduceLROnPlateau: scheduler.step(loss or val_loss)

No database, no Celery: the worker wraps this with a SQL sink, tests and benchmarks
with an in-memory one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from optimlab.worker.engine.batches import batches
from optimlab.worker.engine.data import DatasetSource
from optimlab.worker.engine.devices import resolve_device
from optimlab.worker.engine.errors import SpecError
from optimlab.worker.engine.problem import build_problem
from optimlab.worker.engine.recorder import Recorder
from optimlab.worker.engine.sink import MetricSink, TrainingSummary
from optimlab.worker.engine.stopping import Ending
from optimlab.worker.engine.training import build_training
from optimlab.worker.limits import active_limits, over_limit
from optimlab.worker.spec import JobSpec


def run_training(spec: JobSpec, sink: MetricSink, *, flush_seconds: float = 0.5,
                 clock: Callable[[], float] = time.perf_counter,
                 source: DatasetSource | None = None) -> TrainingSummary:
    """Train as ``spec`` says, writing every step's metrics to ``sink``; return the summary."""
    device = resolve_device(spec.device)
    problem = build_problem(spec, device=device, source=source)
    steps, per_epoch = plan_length(spec, problem.train.rows)
    training = build_training(spec, problem, steps=steps)
    summary = TrainingSummary(device=str(device), parameter_count=problem.parameter_count,
                              loss=problem.plan.name, steps=steps)
    recorder = Recorder(sink, summary, flush_seconds=flush_seconds, clock=clock,
                        thresholds=spec.summary.thresholds)
    rows = batches(problem.train.rows, spec.batch_size, seed=spec.seed, drop_last=spec.drop_last,
                   device=device)
    ending: Ending | None = None
    for step in range(steps):
        ending = training.step(step, next(rows), recorder, last=step == steps - 1)
        summary.epochs_done = (step + 1) / per_epoch
        if ending is None and recorder.due() and not recorder.flush():
            ending = ("cancelled", None)
        if ending is not None:
            summary.conclude(*ending, step)
            break
    if ending is None:
        summary.conclude("completed", None, steps - 1)
    recorder.flush()
    return summary


def plan_length(spec: JobSpec, rows: int) -> tuple[int, int]:
    """(total steps, steps per epoch) for the spec's steps or epochs."""
    if spec.batch_size is None:
        per_epoch = 1
    elif rows == 0:
        raise SpecError(("batch_size",), "mini-batches need data rows; this job has none")
    else:
        per_epoch = rows // spec.batch_size if spec.drop_last else -(-rows // spec.batch_size)
        if per_epoch == 0:
            raise SpecError(("batch_size",), f"with drop_last, a batch of {spec.batch_size} "
                                             f"is larger than the {rows} training rows")
    steps = spec.steps if spec.steps is not None else (spec.epochs or 0) * per_epoch
    if steps > active_limits().max_steps:
        raise SpecError(("epochs",), over_limit("steps (epochs x batches)", steps, "max_steps"))
    return steps, per_epoch


