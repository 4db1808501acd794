"""Adam and AdamW: torch.optim.adam._single_tensor_adam over stacked jobs."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from optimlab.worker.engine.fused.optim.base import (
    FAMILY_FLAG,
    FusedOptimizer,
    Scalar,
    State,
    add_quotient,
    add_squared,
    common_flags,
    prepared_grad,
)

AMSGRAD = FAMILY_FLAG


class FusedAdam(FusedOptimizer):
    cycles = "beta1"

    def setup(self, groups: list[dict[str, Any]]) -> None:
        v = self.values
        v["beta1"] = [float(g["betas"][0]) for g in groups]
        v["beta2"] = [float(g["betas"][1]) for g in groups]
        v["eps"] = [float(g["eps"]) for g in groups]
        v["weight_decay"] = [float(g["weight_decay"]) for g in groups]
        v["key"] = [
            common_flags(g)
            | (AMSGRAD if g["amsgrad"] else 0)
            for g in groups]
        self.amsgrad = any(g["amsgrad"] for g in groups)

    def new_state(self, param: Tensor) -> State:
        state = {"exp_avg": torch.zeros_like(param), "exp_avg_sq": torch.zeros_like(param)}
        if self.amsgrad:
            state["max_exp_avg_sq"] = torch.zeros_like(param)
        return state

    def scalars(self, index: int, step: int) -> dict[str, Scalar]:
        v = self.values
        t = float(step)  # torch.optim reads its float32 step count back with item()

        def step_size(lr: float, beta1: float) -> float:
            return -(lr / (1 - float(beta1**t)))

        def bias_correction2_sqrt(beta2: float) -> float:
            return float((1 - beta2**t) ** 0.5)

        return {
            "weight_decay": self.scalar("weight_decay", float, v["weight_decay"]),
            "decay_factor": self.scalar("decay_factor", lambda lr, wd: 1 - lr * wd,
                                        self.lr, v["weight_decay"]),
            "one_minus_beta1": self.scalar("one_minus_beta1", lambda b: 1 - b, self.cycled),
            "beta2": self.scalar("beta2", float, v["beta2"]),
            "one_minus_beta2": self.scalar("one_minus_beta2", lambda b: 1 - b, v["beta2"]),
            "eps": self.scalar("eps", float, v["eps"]),
            "neg_step_size": self.scalar("neg_step_size", step_size, self.lr, self.cycled,
                                         token=step),
            "bias_correction2_sqrt": self.scalar(
                "bias_correction2_sqrt", bias_correction2_sqrt, v["beta2"], token=step),
        }

    def update(self, key: int, param: Tensor, grad: Tensor, state: State,
               s: dict[str, Scalar]) -> None:
        grad = prepared_grad(key, param, grad, s)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, s["one_minus_beta1"])
        add_squared(exp_avg_sq.mul_(s["beta2"]), grad, s["one_minus_beta2"])
        if key & AMSGRAD:
            max_exp_avg_sq = state["max_exp_avg_sq"]
            torch.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
            denom = (max_exp_avg_sq.sqrt() / s["bias_correction2_sqrt"]).add_(s["eps"])
        else:
            denom = (exp_avg_sq.sqrt() / s["bias_correction2_sqrt"]).add_(s["eps"])
        add_quotient(param, exp_avg, denom, s["neg_step_size"])
