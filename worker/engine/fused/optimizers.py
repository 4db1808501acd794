"""Fused optimizers: ``J`` jobs' torch.optim updates as one vectorised update.

``fused_optimizer(name, options, params)`` takes the torch.optim class name shared by
the jobs, each job's keyword arguments, and the parameters stacked along a leading job
dimension (``[J, *shape]``). Its ``step`` reproduces, for every job, what that job's own
``torch.optim.<name>(..., **options[j])`` would do to its ``[*shape]`` tensors on CPU
(the single-tensor implementation), bit for bit: see ``optim/base.py`` for how.

What is not covered raises ``NotFusable``: other classes (LBFGS, Rprop, SparseAdam, ...),
tensor hyperparameters, ``foreach``/``fused``/``capturable``/``differentiable`` set to
True, and parameters that are not real float32/float64 tensors.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor

from optimlab.worker.engine.fused.optim.adadelta import FusedAdadelta
from optimlab.worker.engine.fused.optim.adagrad import FusedAdagrad
from optimlab.worker.engine.fused.optim.adam import FusedAdam
from optimlab.worker.engine.fused.optim.adamax import FusedAdamax
from optimlab.worker.engine.fused.optim.asgd import FusedASGD
from optimlab.worker.engine.fused.optim.base import FusedOptimizer, NotFusable
from optimlab.worker.engine.fused.optim.nadam import FusedNAdam
from optimlab.worker.engine.fused.optim.radam import FusedRAdam
from optimlab.worker.engine.fused.optim.rmsprop import FusedRMSprop
from optimlab.worker.engine.fused.optim.sgd import FusedSGD

__all__ = ["FAMILIES", "FusedOptimizer", "NotFusable", "fused_optimizer"]

FAMILIES: dict[str, type[FusedOptimizer]] = {
    "SGD": FusedSGD,
    "Adam": FusedAdam,
    "AdamW": FusedAdam,
    "RMSprop": FusedRMSprop,
    "Adagrad": FusedAdagrad,
    "Adamax": FusedAdamax,
    "NAdam": FusedNAdam,
    "RAdam": FusedRAdam,
    "Adadelta": FusedAdadelta,
    "ASGD": FusedASGD,
}
# Options that select another implementation than the single-tensor one.
_IMPLEMENTATION_FLAGS = ("foreach", "fused", "capturable", "differentiable")
_WHY = {
    "LBFGS": "LBFGS needs a closure",
    "SparseAdam": "SparseAdam needs sparse gradients",
}


def fused_optimizer(name: str, options: list[dict[str, Any]],
                    params: list[Tensor]) -> FusedOptimizer:
    """The fused form of ``torch.optim.<name>`` for jobs with keyword arguments ``options``.

    ``params`` are the stacked parameters (``[J, *shape]``, ``J == len(options)``).
    Options are checked by torch.optim's own constructor (ValueError / TypeError as it
    raises them); what has no fused form raises NotFusable.
    """
    family = FAMILIES.get(name)
    if family is None:
        raise NotFusable(_WHY.get(name, f"{name} has no fused implementation"))
    cls = getattr(torch.optim, name)
    if not options:
        raise ValueError("no jobs")
    _check_params(params, len(options))
    groups = [_resolve(name, cls, job) for job in options]
    return family(name, groups, params)


def _check_params(params: list[Tensor], jobs: int) -> None:
    if not params:
        raise ValueError("no parameters")
    dtypes = {p.dtype for p in params}
    if len(dtypes) != 1 or not dtypes <= {torch.float32, torch.float64}:
        names = ", ".join(sorted(str(d).removeprefix("torch.") for d in dtypes))
        raise NotFusable(f"parameters of dtype {names} (only all float32 or all float64)")
    for p in params:
        if p.dim() == 0 or p.shape[0] != jobs:
            raise ValueError(f"a parameter of shape {list(p.shape)} is not stacked over "
                             f"{jobs} jobs")
        if not p.is_contiguous():
            raise ValueError("stacked parameters must be contiguous")
        if p.is_sparse or p.device.type != "cpu":
            raise NotFusable(f"parameters on {p.device.type} (only dense CPU tensors)")


def _resolve(name: str, cls: type[torch.optim.Optimizer],
             options: dict[str, Any]) -> dict[str, Any]:
    """A job's options with the class's defaults filled in, as its param group holds them."""
    for key, value in options.items():
        values = value if isinstance(value, tuple | list) else (value,)
        if any(isinstance(v, Tensor) for v in values):
            raise NotFusable(f"{name} with a tensor {key}")
    merged = {**_defaults(cls), **options}
    for flag in _IMPLEMENTATION_FLAGS:
        if merged.get(flag):
            raise NotFusable(f"{name} with {flag}=True")
    # torch.optim's own checks (and settings a subclass adds, e.g. AdamW's
    # decoupled_weight_decay): the param group of a stand-in with this job's options.
    stand_in = cls([torch.zeros(1, requires_grad=True)], **options)
    group = {key: value for key, value in stand_in.param_groups[0].items() if key != "params"}
    return {**merged, **group}


_DEFAULTS: dict[str, dict[str, Any]] = {}


def _defaults(cls: type[torch.optim.Optimizer]) -> dict[str, Any]:
    """The keyword defaults of the class's constructor (read once per class)."""
    key = f"{cls.__module__}.{cls.__qualname__}"
    if key not in _DEFAULTS:
        signature = inspect.signature(cls.__init__)
        _DEFAULTS[key] = {name: p.default for name, p in signature.parameters.items()
                          if p.default is not inspect.Parameter.empty}
    return _DEFAULTS[key]
