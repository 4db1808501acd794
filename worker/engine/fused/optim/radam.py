"""RAdam: torch.optim.radam._single_tensor_radam over stacked jobs."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from optimlab.worker.engine.fused.optim.base import (
    FAMILY_FLAG,
    FusedOptimizer,
    Scalar,
    State,
    add_squared,
    common_flags,
    prepared_grad,
)

RECTIFIED = FAMILY_FLAG


def rho(beta2: float, t: float) -> tuple[float, float]:
    """(rho_inf, rho_t) as torch.optim computes them at step ``t``."""
    rho_inf = 2 / (1 - beta2) - 1
    return rho_inf, rho_inf - 2 * t * (beta2**t) / (1 - beta2**t)


def rect(beta2: float, t: float) -> float:
    rho_inf, rho_t = rho(beta2, t)
    if not rho_t > 5.0:
        return 1.0  # unused: such jobs take the unrectified branch
    return float(((rho_t - 4) * (rho_t - 2) * rho_inf
                  / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5)


class FusedRAdam(FusedOptimizer):
    cycles = "beta1"

    def setup(self, groups: list[dict[str, Any]]) -> None:
        v = self.values
        v["beta1"] = [float(g["betas"][0]) for g in groups]
        v["beta2"] = [float(g["betas"][1]) for g in groups]
        for key in ("eps", "weight_decay"):
            v[key] = [float(g[key]) for g in groups]
        v["key"] = [common_flags(g) for g in groups]
        self._rectified: tuple[int, list[float], list[int]] | None = None

    def loaded(self) -> None:
        super().loaded()
        self._rectified = None

    def new_state(self, param: Tensor) -> State:
        return {"exp_avg": torch.zeros_like(param), "exp_avg_sq": torch.zeros_like(param)}

    def keys(self, index: int) -> list[int]:
        # before the first step (group_order), the keys of the first: rho at t = 0 is 0/0
        step = max(1, self.steps[index])
        beta2 = self.values["beta2"]
        cached = self._rectified
        if cached is None or cached[0] != step or cached[1] is not beta2:
            t = float(step)
            keys = [key | (RECTIFIED if rho(b, t)[1] > 5.0 else 0)
                    for key, b in zip(self.values["key"], beta2, strict=True)]
            cached = self._rectified = (step, beta2, keys)
        return cached[2]

    def scalars(self, index: int, step: int) -> dict[str, Scalar]:
        v = self.values
        t = float(step)
        return {
            "weight_decay": self.scalar("weight_decay", float, v["weight_decay"]),
            "decay_factor": self.scalar("decay_factor", lambda lr, wd: 1 - lr * wd,
                                        self.lr, v["weight_decay"]),
            "lr": self.scalar("lr", float, self.lr),
            "one_minus_beta1": self.scalar("one_minus_beta1", lambda b: 1 - b, self.cycled),
            "beta2": self.scalar("beta2", float, v["beta2"]),
            "one_minus_beta2": self.scalar("one_minus_beta2", lambda b: 1 - b, v["beta2"]),
            "eps": self.scalar("eps", float, v["eps"]),
            "bias_correction1": self.scalar("bias_correction1", lambda b: 1 - b**t,
                                            self.cycled, token=step),
            "bias_correction2_sqrt": self.scalar(
                "bias_correction2_sqrt", lambda b: float((1 - b**t) ** 0.5), v["beta2"],
                token=step),
            "rect": self.scalar("rect", lambda b: rect(b, t), v["beta2"], token=step),
        }

    def update(self, key: int, param: Tensor, grad: Tensor, state: State,
               s: dict[str, Scalar]) -> None:
        grad = prepared_grad(key, param, grad, s)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, s["one_minus_beta1"])
        add_squared(exp_avg_sq.mul_(s["beta2"]), grad, s["one_minus_beta2"])
        bias_corrected_exp_avg = exp_avg / s["bias_correction1"]
        if key & RECTIFIED:
            # float / Tensor is Tensor.__rtruediv__: reciprocal() * float.
            adaptive_lr = exp_avg_sq.sqrt().add_(s["eps"]).reciprocal() * s[
                "bias_correction2_sqrt"]
            param.add_(bias_corrected_exp_avg * s["lr"] * adaptive_lr * s["rect"], alpha=-1.0)
        else:
            param.add_(bias_corrected_exp_avg * s["lr"], alpha=-1.0)
