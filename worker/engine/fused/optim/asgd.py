"""ASGD: torch.optim.asgd._single_tensor_asgd over stacked jobs."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from optimlab.worker.engine.fused.optim.base import (
    FAMILY_FLAG,
    FusedOptimizer,
    Scalar,
    State,
    add_scaled,
    common_flags,
    prepared_grad,
)

AVERAGING = FAMILY_FLAG


class FusedASGD(FusedOptimizer):
    # eta and mu are kept per parameter (scalar tensors in torch.optim).
    shared_scalars = False

    def setup(self, groups: list[dict[str, Any]]) -> None:
        for key in ("lambd", "alpha", "t0", "weight_decay"):
            self.values[key] = [float(g[key]) for g in groups]
        self.values["key"] = [common_flags(g) for g in groups]
        for values in self.param_values:
            values["eta"] = [0.0] * self.jobs  # set from the lr of the first step
            values["mu"] = [1.0] * self.jobs

    def new_state(self, param: Tensor) -> State:
        return {"ax": torch.zeros_like(param)}

    def keys(self, index: int) -> list[int]:
        return [key | (AVERAGING if mu != 1 else 0) for key, mu
                in zip(self.values["key"], self.param_values[index]["mu"], strict=True)]

    def scalars(self, index: int, step: int) -> dict[str, Scalar]:
        v = self.values
        values = self.param_values[index]
        if step == 1:  # torch.optim creates eta (from the group's lr) on the first step
            values["eta"] = self.round_scalars(self.lr)
        eta = values["eta"]
        return {
            "weight_decay": self.scalar("weight_decay", float, v["weight_decay"]),
            "decay_factor": self.scalar("decay_factor", lambda lambd, e: 1 - lambd * e,
                                        v["lambd"], eta),
            "neg_eta": self.scalar("neg_eta", lambda e: -e, eta),
            "mu": self.scalar("mu", float, values["mu"]),
        }

    def updated(self, index: int, step: int) -> None:
        v = self.values
        t = float(step)
        values = self.param_values[index]
        values["eta"] = self.round_scalars([
            lr / ((1 + lambd * lr * t) ** alpha)
            for lr, lambd, alpha in zip(self.lr, v["lambd"], v["alpha"], strict=True)])
        mu = self.round_scalars([1 / max(1, t - t0) for t0 in v["t0"]])
        if mu != values["mu"]:  # an unchanged list keeps the cached keys and column
            values["mu"] = mu

    def update(self, key: int, param: Tensor, grad: Tensor, state: State,
               s: dict[str, Scalar]) -> None:
        grad = prepared_grad(key, param, grad, s)
        param.mul_(s["decay_factor"])
        add_scaled(param, grad, s["neg_eta"])
        ax = state["ax"]
        if key & AVERAGING:
            ax.add_(param.sub(ax).mul_(s["mu"]))
        else:
            ax.copy_(param)
