"""SGD: torch.optim.sgd._single_tensor_sgd over stacked jobs."""

from __future__ import annotations

import operator
from typing import Any

from torch import Tensor

from optimlab.worker.engine.fused.optim.base import (
    FAMILY_FLAG,
    FusedOptimizer,
    Scalar,
    State,
    add_scaled,
    added,
    common_flags,
    prepared_grad,
)

NESTEROV, MOMENTUM, BUFFER = FAMILY_FLAG, 2 * FAMILY_FLAG, 4 * FAMILY_FLAG


class FusedSGD(FusedOptimizer):
    cycles = "momentum"

    def setup(self, groups: list[dict[str, Any]]) -> None:
        for key in ("momentum", "dampening", "weight_decay"):
            self.values[key] = [float(g[key]) for g in groups]
        self.values["key"] = [
            common_flags(g)
            | (NESTEROV if g["nesterov"] else 0)
            for g in groups]
        for values in self.param_values:
            # torch.optim's momentum_buffer is None until the first step with momentum.
            values["buffer"] = [False] * self.jobs
        self._keys: dict[int, tuple[tuple[list[Any], ...], list[int]]] = {}
        self._settled: dict[int, list[float]] = {}  # the momenta each parameter's flags saw

    def new_state(self, param: Tensor) -> State:
        return {"momentum_buffer": param.new_zeros(param.shape)}

    def keys(self, index: int) -> list[int]:
        # Lists here are replaced, never changed in place: cache on their identity.
        inputs = (self.values["key"], self.cycled, self.param_values[index]["buffer"])
        cached = self._keys.get(index)
        if cached is None or not all(map(operator.is_, cached[0], inputs)):
            keys = [key | (MOMENTUM if m != 0 else 0) | (BUFFER if b else 0)
                    for key, m, b in zip(*inputs, strict=True)]
            cached = self._keys[index] = (inputs, keys)
        return cached[1]

    def updated(self, index: int, step: int) -> None:
        buffer = self.param_values[index]["buffer"]
        # Nothing changes while the momenta are the same list: a job with momentum 0 never
        # gets a buffer (so ``keys`` stays cached), the others have theirs.
        if self._settled.get(index) is self.cycled or all(buffer):
            return
        new = [b or m != 0 for b, m in zip(buffer, self.cycled, strict=True)]
        if new != buffer:
            self.param_values[index]["buffer"] = new
        self._settled[index] = self.cycled

    def keep(self, rows: Tensor, params: list[Tensor]) -> None:
        super().keep(rows, params)
        self._settled.clear()

    def loaded(self) -> None:
        super().loaded()
        self._keys.clear()
        self._settled.clear()

    def scalars(self, index: int, step: int) -> dict[str, Scalar]:
        v = self.values
        return {
            "neg_lr": self.scalar("neg_lr", operator.neg, self.lr),
            "weight_decay": self.scalar("weight_decay", float, v["weight_decay"]),
            "momentum": self.scalar("momentum", float, self.cycled),
            "undamped": self.scalar("undamped", lambda d: 1 - d, v["dampening"]),
        }

    def update(self, key: int, param: Tensor, grad: Tensor, state: State,
               s: dict[str, Scalar]) -> None:
        grad = prepared_grad(key, param, grad, s)
        if key & MOMENTUM:
            buf = state["momentum_buffer"]
            if key & BUFFER:
                add_scaled(buf.mul_(s["momentum"]), grad, s["undamped"])
            else:
                buf.copy_(grad)
            grad = added(grad, buf, s["momentum"]) if key & NESTEROV else buf
        add_scaled(param, grad, s["neg_lr"])
