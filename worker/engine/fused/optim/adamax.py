"""Adamax: torch.optim.adamax._single_tensor_adamax over stacked jobs."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from optimlab.worker.engine.fused.optim.base import (
    FusedOptimizer,
    Scalar,
    State,
    add_quotient,
    common_flags,
    prepared_grad,
)


class FusedAdamax(FusedOptimizer):
    cycles = "beta1"

    def setup(self, groups: list[dict[str, Any]]) -> None:
        v = self.values
        v["beta1"] = [float(g["betas"][0]) for g in groups]
        v["beta2"] = [float(g["betas"][1]) for g in groups]
        v["eps"] = [float(g["eps"]) for g in groups]
        v["weight_decay"] = [float(g["weight_decay"]) for g in groups]
        v["key"] = [common_flags(g) for g in groups]

    def new_state(self, param: Tensor) -> State:
        return {"exp_avg": torch.zeros_like(param), "exp_inf": torch.zeros_like(param)}

    def scalars(self, index: int, step: int) -> dict[str, Scalar]:
        v = self.values
        t = float(step)

        def neg_clr(lr: float, beta1: float) -> float:
            return -(lr / (1 - float(beta1**t)))

        return {
            "weight_decay": self.scalar("weight_decay", float, v["weight_decay"]),
            "one_minus_beta1": self.scalar("one_minus_beta1", lambda b: 1 - b, self.cycled),
            "beta2": self.scalar("beta2", float, v["beta2"]),
            "eps": self.scalar("eps", float, v["eps"]),
            "neg_clr": self.scalar("neg_clr", neg_clr, self.lr, self.cycled, token=step),
        }

    def update(self, key: int, param: Tensor, grad: Tensor, state: State,
               s: dict[str, Scalar]) -> None:
        grad = prepared_grad(key, param, grad, s)
        exp_avg, exp_inf = state["exp_avg"], state["exp_inf"]
        exp_avg.lerp_(grad, s["one_minus_beta1"])
        torch.maximum(exp_inf.mul_(s["beta2"]), grad.abs().add_(s["eps"]), out=exp_inf)
        add_quotient(param, exp_avg, exp_inf, s["neg_clr"])
