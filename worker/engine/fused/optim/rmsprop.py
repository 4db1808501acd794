"""RMSprop: torch.optim.rmsprop._single_tensor_rmsprop over stacked jobs."""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import Tensor

from optimlab.worker.engine.fused.optim.base import (
    FAMILY_FLAG,
    FusedOptimizer,
    Scalar,
    State,
    add_quotient,
    add_scaled,
    add_squared,
    common_flags,
    prepared_grad,
)

CENTERED, MOMENTUM = FAMILY_FLAG, 2 * FAMILY_FLAG


class FusedRMSprop(FusedOptimizer):
    cycles = "momentum"

    def setup(self, groups: list[dict[str, Any]]) -> None:
        for key in ("alpha", "eps", "weight_decay", "momentum"):
            self.values[key] = [float(g[key]) for g in groups]
        self.values["key"] = [
            common_flags(g)
            | (CENTERED if g["centered"] else 0)
            for g in groups]
        self.centered = any(g["centered"] for g in groups)

    def new_state(self, param: Tensor) -> State:
        # The momentum buffer starts at zero (torch.optim creates it only when momentum
        # > 0 at the first step; a schedule may raise momentum from 0 later).
        state = {"square_avg": torch.zeros_like(param),
                 "momentum_buffer": torch.zeros_like(param)}
        if self.centered:
            state["grad_avg"] = torch.zeros_like(param)
        return state

    def keys(self, index: int) -> list[int]:
        return [key | (MOMENTUM if m > 0 else 0)
                for key, m in zip(self.values["key"], self.cycled, strict=True)]

    def scalars(self, index: int, step: int) -> dict[str, Scalar]:
        v = self.values
        return {
            "neg_lr": self.scalar("neg_lr", operator.neg, self.lr),
            "weight_decay": self.scalar("weight_decay", float, v["weight_decay"]),
            "alpha": self.scalar("alpha", float, v["alpha"]),
            "one_minus_alpha": self.scalar("one_minus_alpha", lambda a: 1 - a, v["alpha"]),
            "eps": self.scalar("eps", float, v["eps"]),
            "momentum": self.scalar("momentum", float, self.cycled),
        }

    def update(self, key: int, param: Tensor, grad: Tensor, state: State,
               s: dict[str, Scalar]) -> None:
        grad = prepared_grad(key, param, grad, s)
        square_avg = state["square_avg"]
        add_squared(square_avg.mul_(s["alpha"]), grad, s["one_minus_alpha"])
        if key & CENTERED:
            grad_avg = state["grad_avg"]
            grad_avg.lerp_(grad, s["one_minus_alpha"])
            avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
        else:
            avg = square_avg.sqrt()
        avg = avg.add_(s["eps"])
        if key & MOMENTUM:
            buf = state["momentum_buffer"]
            buf.mul_(s["momentum"]).addcdiv_(grad, avg)
            add_scaled(param, buf, s["neg_lr"])
        else:
            add_quotient(param, grad, avg, s["neg_lr"])
