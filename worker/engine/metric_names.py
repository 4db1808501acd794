"""The names of the series the engine records, for a job alone and fused alike: the one
place that spells them (the API, the dashboard and stored histories read these)."""

from __future__ import annotations

LOSS = "loss"  # each step's training loss (the mini-batch's, or the closure's first)
LR = "lr"  # the first parameter group's, after the step's schedule
MOMENTUM = "momentum"  # recorded only when a cycling schedule changes it (SGD-like)
BETA1 = "beta1"  # ... (Adam-like: betas[0])
GRAD_NORM = "grad_norm"
UPDATE_NORM = "update_norm"
PARAM_NORM = "param_norm"
NORMS = (GRAD_NORM, UPDATE_NORM, PARAM_NORM)  # in the order a step reduces them
TRAIN_LOSS_FULL = "train_loss_full"  # an evaluation's loss over the whole training split
VAL_LOSS = "val_loss"
# Models with more parameters than this record none of them as series.
MAX_RECORDED_PARAMETERS = 16


def evaluation_loss(split: str) -> str:
    """The series of an evaluation's loss on ``split`` ("train" or "val")."""
    return TRAIN_LOSS_FULL if split == "train" else VAL_LOSS


def accuracy(split: str) -> str:
    return f"{split}_accuracy"


def parameter_series(name: str, count: int) -> list[str]:
    """The series of a parameter tensor of ``count`` values: param.w, or param.w.0, ..."""
    return [f"param.{name}"] if count == 1 else [f"param.{name}.{k}" for k in range(count)]
