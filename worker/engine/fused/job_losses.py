"""Every job's loss on its own rows, through the loss kernels a job alone calls.

A job alone's loss is one reduction over its rows, and its order of summation belongs to
the kernel (``nll_loss`` adds in a cascade of partial sums, for one), so the batched mode
calls that kernel once per job. Through autograd that is two or three graph nodes per job
and step; for the common losses one Function instead calls the same forward and backward
kernels for every job, the ones autograd would call (``derivatives.yaml``):

- ``cross_entropy`` is ``nll_loss(log_softmax(x, 1))``. The log-softmax and its backward
  work row by row, and nll_loss's backward writes one value per row, so only its forward
  (a sum over the rows) runs job by job;
- ``mse`` is ``mse_loss``, differentiated by ``mse_loss_backward``.

Other losses go through autograd job by job.
"""

from __future__ import annotations

from typing import Any

import torch

from optimlab.worker.engine.losses import LossPlan, loss_value

MEAN = 1  # at::Reduction::Mean: the default reduction of torch.nn.functional's losses
IGNORE_INDEX = -100  # F.cross_entropy's default


def job_losses(plan: LossPlan, outputs: torch.Tensor, targets: torch.Tensor | None, *,
               shared: bool) -> torch.Tensor:
    """``[jobs]``: each job's loss of ``outputs[j]`` against its targets (``targets`` itself
    when ``shared``, else ``targets[j]``)."""
    if targets is not None and plan.name in _FUNCTIONS and \
            _fits(plan.name, outputs.shape[1:], targets.shape[0 if shared else 1:]):
        loss: torch.Tensor = _FUNCTIONS[plan.name].apply(outputs, targets, shared)
        return loss
    return torch.stack([
        loss_value(plan, outputs[j], targets if shared or targets is None else targets[j])
        for j in range(outputs.shape[0])])


def _fits(name: str, output: torch.Size, target: torch.Size) -> bool:
    """Whether a job's outputs and targets have the shapes the kernels take as they are
    (F.mse_loss would broadcast others; cross_entropy's class labels are one per row)."""
    return target == output if name == "mse" else (len(output) == 2 and target == output[:1])


def _job_targets(targets: torch.Tensor, jobs: int, shared: bool) -> list[torch.Tensor]:
    return [targets] * jobs if shared else list(targets.unbind(0))


class _CrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, outputs: torch.Tensor, targets: torch.Tensor,
                shared: bool) -> torch.Tensor:
        log_probs = torch.log_softmax(outputs, -1)
        labels = _job_targets(targets, outputs.shape[0], shared)
        losses, totals = [], []
        for logp, label in zip(log_probs.unbind(0), labels, strict=True):
            loss, total = torch.ops.aten.nll_loss_forward(logp, label, None, MEAN,
                                                          IGNORE_INDEX)
            losses.append(loss)
            totals.append(total)
        ctx.save_for_backward(log_probs)
        ctx.labels, ctx.totals = labels, totals
        return torch.stack(losses)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (log_probs,) = ctx.saved_tensors
        # nll_loss_backward writes -(grad / total weight) at each row's label, zero elsewhere:
        # one division per job, so one scatter for all jobs writes the same bits.
        per_job = -(grad / torch.stack(ctx.totals))
        labels = torch.stack(ctx.labels).unsqueeze(2)
        grad_log_probs = torch.zeros_like(log_probs).scatter_(
            2, labels, per_job.view(-1, 1, 1).expand(labels.shape))
        grad_outputs = torch._log_softmax_backward_data(grad_log_probs, log_probs, -1,
                                                        log_probs.dtype)
        return grad_outputs, None, None


class _MeanSquaredError(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, outputs: torch.Tensor, targets: torch.Tensor,
                shared: bool) -> torch.Tensor:
        wanted = _job_targets(targets, outputs.shape[0], shared)
        ctx.save_for_backward(outputs)
        ctx.wanted = wanted
        return torch.stack([torch.ops.aten.mse_loss(output, target, MEAN)
                            for output, target in zip(outputs.unbind(0), wanted, strict=True)])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (outputs,) = ctx.saved_tensors
        return torch.stack([
            torch.ops.aten.mse_loss_backward(g, output, target, MEAN)
            for g, output, target in zip(grad.unbind(0), outputs.unbind(0), ctx.wanted,
                                         strict=True)]), None, None


_FUNCTIONS: dict[str, type[torch.autograd.Function]] = {
    "cross_entropy": _CrossEntropy, "mse": _MeanSquaredError}
