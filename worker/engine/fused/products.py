"""Every job's Linear layer as one batched product, differentiated the way a job alone is.

A job alone runs ``F.linear(x, W, b)``, which is ``addmm(b, x, W.t())``, and autograd
differentiates it as ``W.grad = grad.t().mm(x)``, ``x.grad = grad.mm(W)`` and
``b.grad = grad.sum(0)``. Letting autograd differentiate the batched forward instead
(``baddbmm(b, x, W.transpose(1, 2))``) computes the weight's gradient as the transpose
of ``x.t().mm(grad)``: the same sum with its operands swapped, which a BLAS library adds
up in another order. So this Function states the backward itself, one batched product per
product a job alone makes, each with its operands in the job's order.
"""

from __future__ import annotations

from typing import Any

import torch


class StackedLinear(torch.autograd.Function):
    """``[jobs, rows, in]`` inputs, ``[jobs, out, in]`` weights, ``[jobs, out]`` biases (or
    None) to ``[jobs, rows, out]`` outputs."""

    @staticmethod
    def forward(ctx: Any, inputs: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(inputs, weight)
        ctx.has_bias = bias is not None
        transposed = weight.transpose(1, 2)
        if bias is None:
            return torch.bmm(inputs, transposed)
        return torch.baddbmm(bias.unsqueeze(1), inputs, transposed)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor
                 ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        inputs, weight = ctx.saved_tensors
        needs_inputs, needs_weight, needs_bias = ctx.needs_input_grad
        grad_inputs = torch.bmm(grad, weight) if needs_inputs else None
        grad_weight = torch.bmm(grad.transpose(1, 2), inputs) if needs_weight else None
        grad_bias = grad.sum(1) if ctx.has_bias and needs_bias else None
        return grad_inputs, grad_weight, grad_bias


def stacked_linear(inputs: torch.Tensor, weight: torch.Tensor,
                   bias: torch.Tensor | None) -> torch.Tensor:
    output: torch.Tensor = StackedLinear.apply(inputs, weight, bias)  # type: ignore[no-untyped-call]
    return output
