"""The batched mode's products and losses against each job's own autograd, bit for bit.

A job alone runs ``F.linear`` and ``F.cross_entropy`` / ``F.mse_loss`` through autograd;
the batched mode runs one Function per layer and per loss for every job. These tests give
both the same parameters and rows and compare every loss and gradient exactly. (Whether a
batched product sums as one job's product is the BLAS library's call; under MKL's strict
reproducibility, which the worker and this test session set, it does.)
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from optimlab.worker.engine.fused.job_losses import job_losses
from optimlab.worker.engine.fused.products import stacked_linear
from optimlab.worker.engine.losses import LossPlan
from optimlab.worker.engine.numerics import STRICT, reproducible_products

JOBS, ROWS = 5, 24  # rows: not a power of two, so a mean's division rounds
LAYERS = [(64, 128), (128, 64), (64, 10)]  # digits' MLP


def _network(bias: bool, generator: torch.Generator) -> list[torch.Tensor]:
    params = []
    for fan_in, fan_out in LAYERS:
        params.append(torch.randn(JOBS, fan_out, fan_in, generator=generator) * 0.1)
        if bias:
            params.append(torch.randn(JOBS, fan_out, generator=generator) * 0.1)
    return [p.requires_grad_() for p in params]


def _forward(layer: object, inputs: torch.Tensor, params: list[torch.Tensor],
             bias: bool) -> torch.Tensor:
    step = 2 if bias else 1
    output = inputs
    for k in range(len(LAYERS)):
        weight, b = params[k * step], params[k * step + 1] if bias else None
        output = layer(output, weight, b)  # type: ignore[operator]
        if k + 1 < len(LAYERS):
            output = torch.relu(output)
    return output


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
def test_batched_products_and_losses_equal_each_job_alone(
        loss: str, bias: bool, shared: bool, threads: int) -> None:
    generator = torch.Generator().manual_seed(3)
    params = _network(bias, generator)
    inputs = torch.randn(ROWS if shared else JOBS, *([] if shared else [ROWS]), 64,
                         generator=generator).reshape(*([] if shared else [JOBS]), ROWS, 64)
    targets = (torch.randint(0, 10, (ROWS,) if shared else (JOBS, ROWS), generator=generator)
               if loss == "cross_entropy" else
               torch.randn(*(() if shared else (JOBS,)), ROWS, 10, generator=generator))
    plan = LossPlan(loss, 10, classification=loss == "cross_entropy")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        stacked = inputs.expand(JOBS, *inputs.shape) if shared else inputs
        outputs = _forward(stacked_linear, stacked, params, bias)
        losses = job_losses(plan, outputs, targets, shared=shared)
        weights = torch.rand(JOBS, generator=generator)  # each job's loss gets its own grad
        (losses * weights).sum().backward()
        for j in range(JOBS):
            own = [p.detach()[j].clone().requires_grad_() for p in params]
            x = inputs if shared else inputs[j]
            t = targets if shared else targets[j]
            function = F.cross_entropy if loss == "cross_entropy" else F.mse_loss
            alone = function(_forward(F.linear, x, own, bias), t)
            (alone * weights[j]).backward()
            assert torch.equal(losses[j], alone), j
            for k, (p, o) in enumerate(zip(params, own, strict=True)):
                assert p.grad is not None
                assert o.grad is not None
                assert torch.equal(p.grad[j], o.grad), (j, k)
    finally:
        torch.set_num_threads(previous)


def test_other_losses_go_through_autograd_job_by_job() -> None:
    outputs = torch.randn(3, 8, 1, requires_grad=True)
    targets = torch.randn(3, 8, 1)
    plan = LossPlan("l1", 1, classification=False)
    losses = job_losses(plan, outputs, targets, shared=False)
    assert torch.equal(losses, torch.stack([F.l1_loss(outputs[j], targets[j])
                                            for j in range(3)]))
    assert losses.grad_fn is not None
    assert "Stack" in type(losses.grad_fn).__name__


def test_products_sum_alike_on_one_thread_and_two() -> None:
    """Why the worker sets MKL_CBWR: without it MKL adds this 10 x 64 product over 32 rows
    in halves from two threads, and one thread gives other bits (seen with torch 2.13's MKL
    on AMD EPYC)."""
    assert os.environ.get("MKL_CBWR") == STRICT
    generator = torch.Generator().manual_seed(0)
    grad, inputs = torch.randn(32, 10, generator=generator), torch.randn(32, 64,
                                                                         generator=generator)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = torch.mm(grad.t(), inputs)
        torch.set_num_threads(2)
        two = torch.mm(grad.t(), inputs)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(one, two)


def test_a_value_the_user_set_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    reproducible_products()
    assert os.environ["MKL_CBWR"] == "COMPATIBLE"
    monkeypatch.delenv("MKL_CBWR")
    reproducible_products()
    assert os.environ["MKL_CBWR"] == STRICT
