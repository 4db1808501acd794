"""Optimizers and LR schedulers, found by introspecting ``torch.optim``.

No hand-kept table: a name is valid when ``torch.optim`` (or its
``lr_scheduler`` module) exports a class of the right kind under it, and a
keyword is valid when that class's constructor accepts it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import torch
from torch.optim import Optimizer, lr_scheduler
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from optimlab.worker.engine.expression import ExpressionError, parse_expression
from optimlab.worker.spec import OptimizerSpec, ScheduleSpec
from optimlab.worker.spec_errors import Loc, SpecError

Scheduler = LRScheduler | ReduceLROnPlateau

# Variables a function-valued scheduler keyword (``lr_lambda``, ``scale_fn``) may use:
# all are bound to the function's single argument (the scheduler's step count).
FUNCTION_VARIABLES = ("step", "epoch", "x")
# Length keywords that default to the job's step count when the user leaves them out.
LENGTH_KEYWORDS = ("total_steps", "T_max")
_SUPPLIED = {"self", "params", "optimizer"}


@functools.cache
def optimizer_classes() -> dict[str, type[Optimizer]]:
    return {
        name: cls
        for name in torch.optim.__all__
        if isinstance(cls := getattr(torch.optim, name, None), type)
        and issubclass(cls, Optimizer)
        and cls is not Optimizer
    }


@functools.cache
def scheduler_classes() -> dict[str, type[Scheduler]]:
    return {
        name: cls
        for name in lr_scheduler.__all__
        if isinstance(cls := getattr(lr_scheduler, name, None), type)
        and issubclass(cls, LRScheduler | ReduceLROnPlateau)
        and cls is not LRScheduler
    }


def keyword_parameters(cls: type) -> dict[str, inspect.Parameter]:
    return {name: p for name, p in constructor_parameters(cls).items()
            if name not in _SUPPLIED and p.kind is not p.VAR_POSITIONAL}


# Signatures are read once per function: inspect.signature costs more than building a
# small optimizer, and validating a sweep builds one (and maybe a scheduler) per point.
@functools.cache
def signature_parameters(function: Callable[..., Any]) -> Mapping[str, inspect.Parameter]:
    """The parameters of ``function``'s signature (read-only: the result is shared)."""
    return inspect.signature(function).parameters


def constructor_parameters(cls: type) -> Mapping[str, inspect.Parameter]:
    """Every parameter of ``cls.__init__``."""
    return signature_parameters(cls.__init__)  # type: ignore[misc]


def needs_closure(cls: type[Optimizer]) -> bool:
    """Whether ``step`` must be given a closure (LBFGS: its line search re-evaluates)."""
    closure = signature_parameters(cls.step).get("closure")
    return closure is not None and closure.default is inspect.Parameter.empty


def resolve(name: str, classes: Mapping[str, type], *, loc: Loc,
            kind: str) -> type:
    try:
        return classes[name]
    except KeyError:
        known = ", ".join(sorted(classes))
        raise SpecError((*loc, "name"), f"unknown {kind} {name!r}; known: {known}") from None


def check_keywords(cls: type, kwargs: Mapping[str, Any], *, loc: Loc) -> None:
    accepted = keyword_parameters(cls)
    for key in kwargs:
        if key not in accepted:
            names = ", ".join(accepted)
            raise SpecError((*loc, key), f"{cls.__name__} has no keyword {key!r}; "
                                           f"accepted: {names}")
    for key, parameter in accepted.items():
        if parameter.default is inspect.Parameter.empty and key not in kwargs:
            raise SpecError((*loc, key), f"{cls.__name__} requires {key!r}")


def as_argument(value: Any) -> Any:
    """A JSON value as an optimizer keyword: lists become tuples (betas, etas, ...)."""
    return tuple(as_argument(v) for v in value) if isinstance(value, list) else value


def build_optimizer(spec: OptimizerSpec,
                    params: Iterable[torch.Tensor] | Iterable[dict[str, Any]]) -> Optimizer:
    """The optimizer over ``params``: tensors, or groups (dicts with "params" and options)."""
    loc = ("optimizer",)
    cls = resolve(spec.name, optimizer_classes(), loc=loc, kind="optimizer")
    kwargs = spec.kwargs
    check_keywords(cls, kwargs, loc=loc)
    try:
        return cast(Optimizer, cls(params, **{k: as_argument(v) for k, v in kwargs.items()}))
    except (ValueError, TypeError, RuntimeError, KeyError, IndexError) as exc:
        raise SpecError(loc, f"{cls.__name__} refused its arguments: {exc}") from None


def check_group_options(spec: OptimizerSpec, options: Mapping[str, Any], *, loc: Loc) -> None:
    """Options of a parameter group must be keywords of the job's optimizer."""
    cls = resolve(spec.name, optimizer_classes(), loc=("optimizer",), kind="optimizer")
    accepted = keyword_parameters(cls)
    for key in options:
        if key not in accepted or key == "params":
            raise SpecError((*loc, key), f"{cls.__name__} has no keyword {key!r}; "
                                         f"accepted: {', '.join(accepted)}")
    # torch checks values only in the constructor, not in add_param_group: build one
    # with the group's options over a stand-in parameter to have them checked.
    merged = {**spec.kwargs, **options}
    try:
        cls([torch.zeros(1, requires_grad=True)],
            **{k: as_argument(v) for k, v in merged.items()})
    except (ValueError, TypeError, RuntimeError, KeyError, IndexError) as exc:
        raise SpecError(loc, f"{cls.__name__} refused these options: {exc}") from None


def build_scheduler(spec: ScheduleSpec, optimizer: Optimizer, *, steps: int,
                    loc: Loc = ("schedule",)) -> Scheduler:
    cls = resolve(spec.name, scheduler_classes(), loc=loc, kind="scheduler")
    accepted = keyword_parameters(cls)
    kwargs = spec.kwargs
    for key in LENGTH_KEYWORDS:
        if key in accepted and key not in kwargs and "epochs" not in kwargs:
            kwargs[key] = steps
    if "cycle_momentum" in accepted and "cycle_momentum" not in kwargs and not (
            "momentum" in optimizer.defaults or "betas" in optimizer.defaults):
        # CyclicLR and OneCycleLR cycle momentum by default, and refuse optimizers that
        # have none (Adagrad, Rprop, ...): cycle it where the optimizer has it.
        kwargs["cycle_momentum"] = False
    check_keywords(cls, kwargs, loc=loc)
    kwargs = {key: _scheduler_argument(value, accepted[key], optimizer, steps, (*loc, key))
              for key, value in kwargs.items()}
    if "optimizer" in constructor_parameters(cls):
        kwargs["optimizer"] = optimizer
    try:
        return cast(Scheduler, cls(**kwargs))
    except (ValueError, TypeError, RuntimeError, KeyError, IndexError, ZeroDivisionError,
            OverflowError, ExpressionError) as exc:
        raise SpecError(loc, f"{cls.__name__} refused its arguments: {exc}") from None


def _scheduler_argument(value: Any, parameter: inspect.Parameter, optimizer: Optimizer,
                        steps: int, loc: Loc) -> Any:
    annotation = str(parameter.annotation)
    if "LRScheduler" in annotation:
        if not isinstance(value, list) or not value:
            raise SpecError(loc, "expected a non-empty list of schedules")
        return [build_scheduler(_schedule_spec(item, (*loc, i)), optimizer, steps=steps,
                                loc=(*loc, i))
                for i, item in enumerate(value)]
    if "Callable" in annotation and value is not None:
        if isinstance(value, list):
            return [_function(item, (*loc, i)) for i, item in enumerate(value)]
        return _function(value, loc)
    return value


def _schedule_spec(value: Any, loc: Loc) -> ScheduleSpec:
    if not isinstance(value, dict):
        raise SpecError(loc, "expected a schedule object with a 'name'")
    try:
        return ScheduleSpec.model_validate(value)
    except ValueError as exc:
        raise SpecError(loc, str(exc).splitlines()[-1].strip()) from None


def _function(source: Any, loc: Loc) -> Any:
    if not isinstance(source, str):
        raise SpecError(loc, "expected an expression string such as '0.95**step'")
    try:
        expression = parse_expression(source, allowed_names=FUNCTION_VARIABLES)
    except ExpressionError as exc:
        raise SpecError(loc, str(exc)) from None

    def function(argument: Any) -> Any:
        return expression.evaluate_scalar(dict.fromkeys(FUNCTION_VARIABLES, argument))

    return function
