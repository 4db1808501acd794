"""The norms a fused run records after each update, computed for many steps at once.

A job alone records, after each step, its gradient's norm, its update's norm and its
parameters' norm (``total_norm`` over its tensors), and a small model's parameters. A
fused run keeps each step's gradients and updated parameters as they are (the gradients
are new tensors every step; the parameters are copied) and turns a stretch of steps into
those values with one reduction per tensor: every job's row of every step is reduced on its
own, by the same kernel, as a step at a time would reduce it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

# Elements held (gradients and parameters together) before the held steps are reduced:
# hundreds of steps of a small model. A step of at least LARGE_STEP elements is reduced at
# once: stacking it with others would copy more than the per-step calls cost.
HOLD_ELEMENTS = 4_000_000
LARGE_STEP = 100_000


def job_norms(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Each row's global L2 norm over its slice of every tensor (``[rows, ...]`` each):
    ``total_norm`` per job."""
    per_tensor = [torch.linalg.vector_norm(t.reshape(t.shape[0], -1), dim=1) for t in tensors]
    total: torch.Tensor = torch.linalg.vector_norm(torch.stack(per_tensor, dim=1), dim=1)
    return total


class HeldSteps:
    """Steps whose norms are not computed yet, for the jobs of the current stack."""

    def __init__(self, params: Sequence[torch.Tensor], *, record_params: bool) -> None:
        self.base = [p.detach().clone() for p in params]  # before the first held step
        self.record_params = record_params
        self.grads: list[list[torch.Tensor]] = []  # per step, per tensor: [jobs, ...]
        self.params: list[list[torch.Tensor]] = []  # per step, after its update
        self.elements = 0

    def __len__(self) -> int:
        return len(self.grads)

    def hold(self, grads: list[torch.Tensor], params: Sequence[torch.Tensor]) -> None:
        after = [p.detach().clone() for p in params]
        self.grads.append(grads)
        self.params.append(after)
        self.elements += 2 * sum(t.numel() for t in after)

    @property
    def full(self) -> bool:
        return self.elements >= HOLD_ELEMENTS or self.elements >= LARGE_STEP * len(self.grads)

    def settle(self) -> torch.Tensor | None:
        """The held steps' columns, ``[jobs, names, steps]`` (grad_norm, update_norm,
        param_norm, then each recorded parameter element); None when nothing is held."""
        if not self.grads:
            return None
        steps, jobs = len(self.grads), self.base[0].shape[0]
        if steps == 1:  # views, no copies
            grads = [g.unsqueeze(0) for g in self.grads[0]]
            after = [a.unsqueeze(0) for a in self.params[0]]
            before = [b.unsqueeze(0) for b in self.base]
        else:
            grads = [torch.stack([step[i] for step in self.grads])
                     for i in range(len(self.base))]
            after = [torch.stack([step[i] for step in self.params])
                     for i in range(len(self.base))]
            before = [torch.cat([b.unsqueeze(0), a[:-1]]) for b, a in zip(
                self.base, after, strict=True)]
        columns = [_flat_norms(grads), _flat_norms([a - b for a, b in zip(
            after, before, strict=True)]), _flat_norms(after)]
        table = torch.stack(columns, dim=2)  # [steps, jobs, 3]
        if self.record_params:
            table = torch.cat([table, *(a.reshape(steps, jobs, -1) for a in after)], dim=2)
        self.base = [a[-1] for a in after]
        self.grads, self.params, self.elements = [], [], 0
        return table.permute(1, 2, 0)

    def keep(self, rows: torch.Tensor) -> None:
        """Go on with jobs ``rows`` (nothing may be held)."""
        if self.grads:
            raise RuntimeError("settle the held steps before the jobs change")
        self.base = [b[rows] for b in self.base]


def _flat_norms(tensors: list[torch.Tensor]) -> torch.Tensor:
    """job_norms over ``[steps, jobs, ...]`` tensors: ``[steps, jobs]``."""
    steps, jobs = tensors[0].shape[:2]
    return job_norms([t.reshape(steps * jobs, -1) for t in tensors]).reshape(steps, jobs)
