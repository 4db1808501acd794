"""Check at submit time that the engine can run a spec, without running it.

Shapes are checked by evaluating the model on ``meta`` tensors (shapes only,
no arithmetic); the optimizer and scheduler are built for real on zero
tensors of the model's shapes and stepped, so whatever their constructors or
first steps refuse is reported now, naming the field, instead of failing in a
worker later.
"""

from __future__ import annotations

import warnings

import torch

from optimlab.worker.engine.errors import SpecError
from optimlab.worker.engine.problem import Problem, build_problem
from optimlab.worker.engine.registry import (
    Scheduler,
    build_optimizer,
    build_scheduler,
    needs_closure,
)
from optimlab.worker.spec import JobSpec

# Scheduler steps simulated at submit time (later failures fail the job instead).
SIMULATED_SCHEDULER_STEPS = 2_000
_RUN_ERRORS = (RuntimeError, ValueError, TypeError, IndexError, KeyError, ZeroDivisionError,
               OverflowError, AssertionError, NotImplementedError)



def validate_spec(spec: JobSpec) -> None:
    """Raise :class:`SpecError` for the first field the engine could not run."""
    problem = build_problem(spec, device="cpu")
    _check_shapes(spec, problem)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _check_optimization(spec, problem)


def _check_shapes(spec: JobSpec, problem: Problem) -> None:
    for rows in _batch_sizes(problem.size, spec.batch_size):
        env = {name: p.detach().to("meta").requires_grad_()
               for name, p in problem.parameters.items()}
        env.update((name, column[:rows].to("meta")) for name, column in problem.inputs.items())
        try:
            output = problem.expression.evaluate(env)
        except _RUN_ERRORS as exc:
            raise SpecError(("model", "expression"), f"cannot be evaluated: {exc}") from None
        if not isinstance(output, torch.Tensor) or not output.requires_grad:
            raise SpecError(("model", "expression"), "does not depend on any parameter")
        if spec.loss == "none":
            if output.numel() != 1:
                raise SpecError(("model", "expression"),
                                f"gives shape {tuple(output.shape)}, but loss 'none' needs a "
                                "single value: wrap it in sum() or mean()")
        else:
            assert problem.targets is not None
            _check_against_targets(tuple(output.shape), tuple(problem.targets[:rows].shape))


def _batch_sizes(size: int, batch_size: int | None) -> list[int]:
    if batch_size is None or batch_size >= size:
        return [size]
    sizes = [batch_size]
    if size % batch_size:
        sizes.append(size % batch_size)
    return sizes


def _check_against_targets(output: tuple[int, ...], targets: tuple[int, ...]) -> None:
    try:
        broadcast = torch.broadcast_shapes(output, targets)
    except RuntimeError:
        broadcast = None
    if broadcast != targets:
        raise SpecError(("model", "expression"),
                        f"gives shape {output} per batch, which does not match data.targets "
                        f"{targets}")


def _check_optimization(spec: JobSpec, problem: Problem) -> None:
    params = [torch.zeros_like(p).requires_grad_() for p in problem.parameters.values()]
    optimizer = build_optimizer(spec.optimizer, params)
    try:
        _dry_step(optimizer, params)
    except _RUN_ERRORS as exc:
        raise SpecError(("optimizer", "name"),
                        f"{spec.optimizer.name} cannot train this model: {exc}") from None
    if spec.schedule is None:
        return
    scheduler = build_scheduler(spec.schedule, optimizer, steps=spec.steps)
    try:
        for _ in range(min(spec.steps, SIMULATED_SCHEDULER_STEPS)):
            _dry_scheduler_step(scheduler)
    except _RUN_ERRORS as exc:
        raise SpecError(("schedule",), f"{spec.schedule.name} fails while stepping: {exc}") \
            from None


def _dry_step(optimizer: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = sum((p.sum() for p in params), torch.zeros(()))
        loss.backward()
        return loss

    if needs_closure(type(optimizer)):
        optimizer.step(closure)  # type: ignore[arg-type]
    else:
        closure()
        optimizer.step()


def _dry_scheduler_step(scheduler: Scheduler) -> None:
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(1.0)
    else:
        scheduler.step()
