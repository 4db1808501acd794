"""NAdam: torch.optim.nadam._single_tensor_nadam over stacked jobs."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from optimlab.worker.engine.fused.optim.base import (
    FusedOptimizer,
    Scalar,
    State,
    add_quotient,
    add_squared,
    common_flags,
    prepared_grad,
)


class FusedNAdam(FusedOptimizer):
    cycles = "beta1"
    # mu_product is kept per parameter (a parameter skipped on some steps has its own).
    shared_scalars = False

    def setup(self, groups: list[dict[str, Any]]) -> None:
        v = self.values
        v["beta1"] = [float(g["betas"][0]) for g in groups]
        v["beta2"] = [float(g["betas"][1]) for g in groups]
        for key in ("eps", "weight_decay", "momentum_decay"):
            v[key] = [float(g[key]) for g in groups]
        v["key"] = [common_flags(g) for g in groups]
        for values in self.param_values:
            values["mu_product"] = [1.0] * self.jobs  # a scalar tensor in torch.optim

    def new_state(self, param: Tensor) -> State:
        return {"exp_avg": torch.zeros_like(param), "exp_avg_sq": torch.zeros_like(param)}

    def scalars(self, index: int, step: int) -> dict[str, Scalar]:
        v = self.values
        t = float(step)
        mus = self.per_job(lambda beta1, decay: beta1 * (1.0 - 0.5 * (0.96 ** (t * decay))),
                           self.cycled, v["momentum_decay"])
        mu_nexts = self.per_job(
            lambda beta1, decay: beta1 * (1.0 - 0.5 * (0.96 ** ((t + 1) * decay))),
            self.cycled, v["momentum_decay"])
        # mu_product *= mu: a float32 (scalar dtype) tensor times the float mu.
        products = self.round_scalars(self.per_job(
            lambda product, mu: product * mu,
            self.param_values[index]["mu_product"], self.round_scalars(mus)))
        self.param_values[index]["mu_product"] = products
        return {
            "weight_decay": self.scalar("weight_decay", float, v["weight_decay"]),
            "decay_factor": self.scalar("decay_factor", lambda lr, wd: 1 - lr * wd,
                                        self.lr, v["weight_decay"]),
            "one_minus_beta1": self.scalar("one_minus_beta1", lambda b: 1 - b, self.cycled),
            "beta2": self.scalar("beta2", float, v["beta2"]),
            "one_minus_beta2": self.scalar("one_minus_beta2", lambda b: 1 - b, v["beta2"]),
            "eps": self.scalar("eps", float, v["eps"]),
            "bias_correction2": self.scalar("bias_correction2", lambda b: 1 - b**t,
                                            v["beta2"], token=step),
            "grad_coefficient": self.scalar(
                "grad_coefficient",
                lambda lr, mu, product: -lr * (1.0 - mu) / (1.0 - product),
                self.lr, mus, products, token=step),
            "avg_coefficient": self.scalar(
                "avg_coefficient",
                lambda lr, mu_next, product: (-lr * mu_next) / (1.0 - product * mu_next),
                self.lr, mu_nexts, products, token=step),
        }

    def update(self, key: int, param: Tensor, grad: Tensor, state: State,
               s: dict[str, Scalar]) -> None:
        grad = prepared_grad(key, param, grad, s)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, s["one_minus_beta1"])
        add_squared(exp_avg_sq.mul_(s["beta2"]), grad, s["one_minus_beta2"])
        denom = exp_avg_sq.div(s["bias_correction2"]).sqrt()
        denom.add_(s["eps"])
        add_quotient(param, grad, denom, s["grad_coefficient"])
        add_quotient(param, exp_avg, denom, s["avg_coefficient"])
