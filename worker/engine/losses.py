"""Losses: which one a job uses, and targets in the form that loss wants.

The functions are ``torch.nn.functional``'s, with their default reductions (the mean), as
``nn.MSELoss()``, ``nn.CrossEntropyLoss()``... compute them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from optimlab.worker.engine.data import Dataset
from optimlab.worker.spec import ExpressionModel, JobSpec, LogisticModel
from optimlab.worker.spec_errors import SpecError

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

FUNCTIONS: dict[str, LossFunction] = {
    "mse": F.mse_loss,
    "l1": F.l1_loss,
    "huber": F.huber_loss,
    "cross_entropy": F.cross_entropy,
    "bce_with_logits": F.binary_cross_entropy_with_logits,
}
REGRESSION = ("mse", "l1", "huber")
CLASSIFICATION = ("cross_entropy", "bce_with_logits")


@dataclass(frozen=True)
class LossPlan:
    """The loss, the number of model outputs, and whether accuracy means anything."""

    name: str
    outputs: int
    classification: bool


def plan_loss(spec: JobSpec, data: Dataset) -> LossPlan:
    name = spec.loss or _default_loss(spec, data)
    if name == "none":
        if not isinstance(spec.model, ExpressionModel):
            raise SpecError(("loss",), f"a {spec.model.kind} model trains against targets; "
                                       "loss 'none' minimises an expression's own value")
        return LossPlan("none", 1, classification=False)
    if data.targets is None:
        raise SpecError(("loss",), f"loss {name!r} needs targets; these data have none")
    if isinstance(spec.model, LogisticModel) and name not in CLASSIFICATION:
        raise SpecError(("loss",), f"a logistic model trains with cross_entropy or "
                                   f"bce_with_logits, not {name!r}")
    if name in CLASSIFICATION:
        if data.task == "regression":
            raise SpecError(("loss",), f"{name!r} is a classification loss; these data have "
                                       "continuous targets (use mse, l1 or huber)")
        classes = _classes(data)
        if name == "bce_with_logits" and classes > 2:
            raise SpecError(("loss",), f"bce_with_logits is for two classes; the targets have "
                                       f"{classes} (use cross_entropy)")
        return LossPlan(name, classes if name == "cross_entropy" else 1, classification=True)
    if data.task == "classification":
        raise SpecError(("loss",), f"{name!r} is a regression loss; these data are class "
                                   "labels (use cross_entropy)")
    targets = data.targets
    return LossPlan(name, 1 if targets.dim() == 1 else int(targets[0].numel()),
                    classification=False)


def _default_loss(spec: JobSpec, data: Dataset) -> str:
    if isinstance(spec.model, ExpressionModel):
        return "mse" if data.targets is not None else "none"
    if data.targets is None:
        raise SpecError(("data",), "a built-in model needs data with targets")
    if data.task == "classification" or isinstance(spec.model, LogisticModel):
        return "bce_with_logits" if isinstance(spec.model, LogisticModel) and \
            _classes(data) == 2 else "cross_entropy"
    return "mse"


def _classes(data: Dataset) -> int:
    if data.classes is not None:
        return data.classes
    targets = data.targets
    assert targets is not None
    if targets.dim() != 1 or not bool(torch.all(targets == targets.round())) or \
            bool(torch.any(targets < 0)):
        raise SpecError(("data", "targets"), "class labels must be one non-negative integer "
                                             "per row")
    return max(2, int(targets.max().item()) + 1)


def prepare_targets(plan: LossPlan, targets: torch.Tensor | None, *,
                    expression: bool) -> torch.Tensor | None:
    """Targets as the loss wants them: int64 labels, float ``[N, 1]`` for BCE, ``[N, T]``
    for a network's regression outputs (an expression's targets stay as given)."""
    if targets is None or plan.name == "none":
        return targets
    if plan.name == "cross_entropy":
        return targets.to(torch.int64)
    if expression:
        return targets.to(torch.float32)
    targets = targets.to(torch.float32)
    return targets.reshape(targets.shape[0], -1)


def loss_value(plan: LossPlan, output: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    if plan.name == "none":
        return output
    assert targets is not None
    return FUNCTIONS[plan.name](output, targets)


def correct(plan: LossPlan, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """How many rows the output classifies right."""
    if plan.name == "bce_with_logits":
        predicted = (output > 0).to(targets.dtype)
    else:
        predicted = output.argmax(dim=1)
    return (predicted == targets).sum()
