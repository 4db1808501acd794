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
        if checkpoint due: flush, then save model, optimizer, scheduler, RNGs, data position

No database, no Celery: the worker wraps this with a SQL sink, tests and benchmarks
with an in-memory one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import cast

import torch

from optimlab.worker.engine.batches import batches
from optimlab.worker.engine.checkpoint import Checkpointer, RunState
from optimlab.worker.engine.data import DatasetSource
from optimlab.worker.engine.devices import resolve_device
from optimlab.worker.engine.problem import build_problem
from optimlab.worker.engine.recorder import Recorder
from optimlab.worker.engine.resume import capture, restore
from optimlab.worker.engine.sink import MetricSink, TrainingSummary
from optimlab.worker.engine.stopping import Ending
from optimlab.worker.engine.training import build_training
from optimlab.worker.limits import active_limits, over_limit
from optimlab.worker.outcomes import Outcome
from optimlab.worker.spec import JobSpec
from optimlab.worker.spec_errors import SpecError


def run_training(spec: JobSpec, sink: MetricSink, *, flush_seconds: float = 0.5,
                 clock: Callable[[], float] = time.perf_counter,
                 source: DatasetSource | None = None,
                 checkpointer: Checkpointer | None = None, resume: RunState | None = None,
                 init_model: Mapping[str, torch.Tensor] | None = None,
                 index: int = 0) -> TrainingSummary:
    """Train as ``spec`` says, writing every step's metrics to ``sink``; return the summary.

    ``checkpointer`` is handed the run's state right after a flush whenever its policy says
    a checkpoint is due; ``resume``, such a state, makes the run go on from the step after
    it, as the run that took it would have (ResumeError when it does not fit the spec);
    ``init_model`` is a model ``state_dict`` to start from (``spec.init_from``); ``index``,
    the job's in a run of many (its updates say so: kernels.train)."""
    device = resolve_device(spec.device)
    problem = build_problem(spec, device=device, source=source)
    steps, per_epoch = plan_length(spec, problem.train.rows)
    training = build_training(spec, problem, steps=steps)
    summary = TrainingSummary(device=str(device), parameter_count=problem.parameter_count,
                              loss=problem.plan.name, steps=steps)
    recorder = Recorder(sink, summary, flush_seconds=flush_seconds, clock=clock,
                        thresholds=spec.summary.thresholds, index=index)
    rows = batches(problem.train.rows, spec.batch_size, seed=spec.seed, drop_last=spec.drop_last,
                   device=device)
    first, ending = 0, cast(Ending | None, None)
    if resume is not None:
        first, ending = restore(resume, spec, training, recorder, rows, device)
        first += 1
        summary.resumed_from = summary.checkpoint_step = first - 1
        if ending is not None:  # the run had ended; only its outcome was not stored
            summary.conclude(*ending, first - 1)
            recorder.flush()
            return summary
    elif init_model is not None:
        _load_initial(problem.model, init_model)
    saves = _Saves(checkpointer, clock, first - 1)
    for step in range(first, steps):
        ending = training.step(step, next(rows), recorder, last=step == steps - 1)
        summary.epochs_done = (step + 1) / per_epoch
        checkpoint = ending is None and step < steps - 1 and saves.due(step)
        if ending is None and (recorder.due() or checkpoint) and not recorder.flush():
            ending = (Outcome.CANCELLED, None)
        elif checkpoint:  # every point up to this step is stored: the state can go
            saves.save(step, capture(step, spec, training, recorder, rows, device))
            summary.checkpoint_step = step
        if ending is not None:
            summary.conclude(*ending, step)
            break
    if ending is None:
        ending = (Outcome.COMPLETED, None)
        summary.conclude(*ending, steps - 1)
    if recorder.flush() and checkpointer is not None and summary.steps_done > first:
        # The model as the run left it, for GET /v1/jobs/{id}/checkpoint and init_from; a
        # later attempt resumed from it (its finish was lost) only concludes again.
        last = summary.steps_done - 1
        summary.checkpoint_step = last
        saves.save(last, capture(last, spec, training, recorder, rows, device, ending=ending))
    return summary


class _Saves:
    """When the run hands its state to the checkpointer (none: never)."""

    def __init__(self, checkpointer: Checkpointer | None, clock: Callable[[], float],
                 step: int) -> None:
        self.checkpointer = checkpointer
        self.clock = clock
        self.step, self.time = step, clock()

    def due(self, step: int) -> bool:
        return self.checkpointer is not None and self.checkpointer.policy.due(
            step - self.step, self.clock() - self.time)

    def save(self, step: int, state: RunState) -> None:
        assert self.checkpointer is not None
        self.checkpointer.save(step, state)
        self.step, self.time = step, self.clock()


def _load_initial(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    try:
        model.load_state_dict(dict(state))
    except (RuntimeError, KeyError, TypeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SpecError(("init_from",), f"the checkpoint's model does not fit this spec's "
                                        f"model: {detail[:500]}") from None


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


