"""Adadelta: torch.optim.adadelta._single_tensor_adadelta over stacked jobs."""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import Tensor

from optimlab.worker.engine.fused.optim.base import (
    FusedOptimizer,
    Scalar,
    State,
    add_scaled,
    add_squared,
    common_flags,
    prepared_grad,
)


class FusedAdadelta(FusedOptimizer):
    def setup(self, groups: list[dict[str, Any]]) -> None:
        for key in ("rho", "eps", "weight_decay"):
            self.values[key] = [float(g[key]) for g in groups]
        self.values["key"] = [common_flags(g) for g in groups]

    def new_state(self, param: Tensor) -> State:
        return {"square_avg": torch.zeros_like(param), "acc_delta": torch.zeros_like(param)}

    def scalars(self, index: int, step: int) -> dict[str, Scalar]:
        v = self.values
        return {
            "neg_lr": self.scalar("neg_lr", operator.neg, self.lr),
            "weight_decay": self.scalar("weight_decay", float, v["weight_decay"]),
            "rho": self.scalar("rho", float, v["rho"]),
            "one_minus_rho": self.scalar("one_minus_rho", lambda r: 1 - r, v["rho"]),
            "eps": self.scalar("eps", float, v["eps"]),
        }

    def update(self, key: int, param: Tensor, grad: Tensor, state: State,
               s: dict[str, Scalar]) -> None:
        grad = prepared_grad(key, param, grad, s)
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        add_squared(square_avg.mul_(s["rho"]), grad, s["one_minus_rho"])
        std = square_avg.add(s["eps"]).sqrt_()
        delta = acc_delta.add(s["eps"]).sqrt_()
        delta.div_(std).mul_(grad)
        add_squared(acc_delta.mul_(s["rho"]), delta, s["one_minus_rho"])
        add_scaled(param, delta, s["neg_lr"])
