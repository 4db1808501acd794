"""Check at submit time that the engine can run a spec, by starting to run it.

The problem is built for real on the CPU (data, split, model, loss); the model is
evaluated on each batch size the run will see; then one real training step runs
(optimizer, parameter groups, clipping, evaluation, scheduler) and the schedule is
stepped ahead. Whatever fails is reported now, naming the field, instead of failing in
a worker later. Nothing here is recorded.

A :class:`SpecValidator` validates many specs (a sweep's points) with the same refusals,
spec by spec, while building each distinct problem and checking its output only once: only
the optimizer, its step and the schedule, which a point's own options decide, run for every
spec (see :mod:`~optimlab.worker.engine.shared_problems`).
"""

from __future__ import annotations

import time
import warnings

import torch

from optimlab.worker.engine.data import DatasetSource
from optimlab.worker.engine.loop import plan_length
from optimlab.worker.engine.problem import Problem, build_problem
from optimlab.worker.engine.recorder import Recorder
from optimlab.worker.engine.shared_problems import (
    MAX_SHARED_BYTES,
    PreparedProblem,
    ProblemCache,
    RecentDatasetSource,
    problem_key,
)
from optimlab.worker.engine.sink import ListSink, TrainingSummary
from optimlab.worker.engine.training import Training, build_training
from optimlab.worker.spec import ExpressionModel, JobSpec
from optimlab.worker.spec_errors import SpecError

# Scheduler steps simulated at submit time (later failures fail the job instead).
SIMULATED_SCHEDULER_STEPS = 2_000
_RUN_ERRORS = (RuntimeError, ValueError, TypeError, IndexError, KeyError, ZeroDivisionError,
               OverflowError, AssertionError, NotImplementedError)


def validate_spec(spec: JobSpec, *, source: DatasetSource | None = None) -> None:
    """Raise :class:`SpecError` for the first field the engine could not run."""
    SpecValidator(source=source).validate(spec)


class SpecValidator:
    """:func:`validate_spec` for many specs, sharing the problems they have in common."""

    def __init__(self, *, source: DatasetSource | None = None,
                 max_shared_bytes: int = MAX_SHARED_BYTES) -> None:
        self.source = None if source is None else RecentDatasetSource(source)
        self.problems = ProblemCache(max_shared_bytes)

    def validate(self, spec: JobSpec) -> None:
        """Raise :class:`SpecError` for the first field the engine could not run."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prepared, steps = self._prepared(spec)
            problem = prepared.fresh()
            training = build_training(spec, problem, steps=steps)
            _check_step(spec, training, problem)
            _check_schedule(spec, training, steps)

    def _prepared(self, spec: JobSpec) -> tuple[PreparedProblem, int]:
        """The spec's problem with its output checked, and the spec's step count, in
        :func:`validate_spec`'s order. A problem in the cache passed its checks for a spec
        of the same key, so it passes them for this one; the step count is worked out for
        each spec (the length fields are not in the key)."""
        key = problem_key(spec)
        prepared = self.problems.get(key)
        if prepared is not None:
            return prepared, plan_length(spec, prepared.problem.train.rows)[0]
        problem = build_problem(spec, device="cpu", source=self.source)
        steps, _ = plan_length(spec, problem.train.rows)
        for rows in _batch_sizes(problem.train.rows, spec.batch_size):
            _check_output(spec, problem, rows)
        prepared = PreparedProblem.capture(problem)
        self.problems.put(key, prepared)
        return prepared, steps


def _batch_sizes(size: int, batch_size: int | None) -> list[int | None]:
    if batch_size is None or batch_size >= size:
        return [None]
    return [batch_size, *([size % batch_size] if size % batch_size else [])]


def _check_output(spec: JobSpec, problem: Problem, rows: int | None) -> None:
    batch = None if rows is None else torch.arange(rows)
    inputs, targets = problem.train.select(batch)
    where = ("model", "expression") if isinstance(spec.model, ExpressionModel) else ("model",)
    try:
        output = problem.model(inputs)
    except _RUN_ERRORS as exc:
        raise SpecError(where, f"cannot be evaluated on the data: {exc}") from None
    if not isinstance(output, torch.Tensor) or not output.requires_grad:
        raise SpecError(where, "does not depend on any parameter")
    plan = problem.plan
    if plan.name == "none":
        if output.numel() != 1:
            raise SpecError(where, f"gives shape {tuple(output.shape)}, but loss 'none' needs a "
                                   "single value: wrap it in sum() or mean()")
    else:
        assert targets is not None
        _check_against_targets(plan.name, tuple(output.shape), tuple(targets.shape), where)
    try:
        problem.objective(batch).backward()
    except _RUN_ERRORS as exc:
        raise SpecError(("loss",), f"{plan.name} fails on this model and data: {exc}") from None


def _check_against_targets(loss: str, output: tuple[int, ...], targets: tuple[int, ...],
                           where: tuple[str, ...]) -> None:
    if loss == "cross_entropy":
        if len(output) != 2 or output[0] != targets[0]:
            raise SpecError(where, f"gives shape {output} per batch; cross_entropy needs one "
                                   f"row of class scores per target, i.e. ({targets[0]}, classes)")
        return
    try:
        broadcast = torch.broadcast_shapes(output, targets)
    except RuntimeError:
        broadcast = None
    if broadcast != targets:
        raise SpecError(where, f"gives shape {output} per batch, which does not match the "
                               f"targets {targets}")


def _check_step(spec: JobSpec, training: Training, problem: Problem) -> None:
    recorder = Recorder(ListSink(), TrainingSummary(device="cpu", parameter_count=0),
                        flush_seconds=3600.0, clock=time.perf_counter)
    batch = None if spec.batch_size is None else torch.arange(
        min(spec.batch_size, problem.train.rows))
    # The schedule is checked on its own below, so that its failures name it.
    scheduler, training.scheduler = training.scheduler, None
    try:
        training.step(0, batch, recorder, last=True)
    except _RUN_ERRORS as exc:
        raise SpecError(("optimizer", "name"),
                        f"{spec.optimizer.name} cannot train this model: {exc}") from None
    finally:
        training.scheduler = scheduler


def _check_schedule(spec: JobSpec, training: Training, steps: int) -> None:
    scheduler = training.scheduler
    if scheduler is None or spec.schedule is None:
        return
    try:
        for _ in range(min(steps, SIMULATED_SCHEDULER_STEPS)):
            training.step_schedule_only()
    except _RUN_ERRORS as exc:
        raise SpecError(("schedule",), f"{spec.schedule.name} fails while stepping: {exc}") \
            from None
