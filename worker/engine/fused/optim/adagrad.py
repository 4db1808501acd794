"""Adagrad: torch.optim.adagrad._single_tensor_adagrad over stacked jobs (dense gradients)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from optimlab.worker.engine.fused.optim.base import (
    FusedOptimizer,
    Scalar,
    State,
    add_quotient,
    common_flags,
    prepared_grad,
)


class FusedAdagrad(FusedOptimizer):
    def setup(self, groups: list[dict[str, Any]]) -> None:
        for key in ("lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            self.values[key] = [float(g[key]) for g in groups]
        self.values["key"] = [common_flags(g) for g in groups]

    def new_state(self, param: Tensor) -> State:
        column = self.column(self.values["initial_accumulator_value"])
        return {"sum": column.expand(param.shape).clone()}  # torch.full_like per job

    def scalars(self, index: int, step: int) -> dict[str, Scalar]:
        v = self.values
        t = float(step)

        def neg_clr(lr: float, lr_decay: float) -> float:
            return -(lr / (1 + (t - 1) * lr_decay))

        return {
            "weight_decay": self.scalar("weight_decay", float, v["weight_decay"]),
            "eps": self.scalar("eps", float, v["eps"]),
            "neg_clr": self.scalar("neg_clr", neg_clr, self.lr, v["lr_decay"], token=step),
        }

    def update(self, key: int, param: Tensor, grad: Tensor, state: State,
               s: dict[str, Scalar]) -> None:
        grad = prepared_grad(key, param, grad, s)
        state_sum = state["sum"]
        state_sum.addcmul_(grad, grad, value=1)
        std = state_sum.sqrt().add_(s["eps"])
        add_quotient(param, grad, std, s["neg_clr"])
