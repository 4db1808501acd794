"""Norms of held steps, reduced many steps at once, against a step at a time."""

from __future__ import annotations

import pytest
import torch

from optimlab.worker.engine.fused import norms
from optimlab.worker.engine.fused.norms import HeldSteps, job_norms
from tests.worker.engine.fused.fusing import LR_SCALE, PROBLEMS, grid, run_both


def _steps(jobs: int, steps: int) -> list[tuple[list[torch.Tensor], list[torch.Tensor]]]:
    """(gradients, parameters after the update) per step, for a [jobs, 3, 5] and a [jobs]
    tensor, with values over many magnitudes."""
    generator = torch.Generator().manual_seed(7)
    out = []
    for _ in range(steps):
        grads = [torch.randn(jobs, 3, 5, generator=generator) * 10.0 ** torch.randint(
            -6, 6, (jobs, 1, 1), generator=generator), torch.randn(jobs, generator=generator)]
        params = [torch.randn(jobs, 3, 5, generator=generator),
                  torch.randn(jobs, generator=generator)]
        out.append((grads, params))
    return out


def test_settled_columns_equal_norms_taken_step_by_step() -> None:
    jobs, steps = 6, 9
    start = [torch.randn(jobs, 3, 5), torch.randn(jobs)]
    held = HeldSteps(start, record_params=True)
    expected = []
    before = start
    for grads, params in _steps(jobs, steps):
        held.hold(grads, params)
        update = job_norms([a - b for a, b in zip(params, before, strict=True)])
        row = [job_norms(grads).unsqueeze(1), update.unsqueeze(1),
               job_norms(params).unsqueeze(1), *(p.reshape(jobs, -1) for p in params)]
        expected.append(torch.cat(row, dim=1))
        before = params
    table = held.settle()
    assert table is not None
    assert table.shape == (jobs, 3 + 16, steps)
    assert torch.equal(table, torch.stack(expected, dim=2))
    assert held.settle() is None
    assert len(held) == 0


def test_the_next_stretch_starts_from_the_last_settled_parameters() -> None:
    jobs = 4
    start = [torch.zeros(jobs, 2)]
    held = HeldSteps(start, record_params=False)
    held.hold([torch.ones(jobs, 2)], [torch.full((jobs, 2), 3.0)])
    held.settle()
    held.hold([torch.ones(jobs, 2)], [torch.full((jobs, 2), 7.0)])
    table = held.settle()
    assert table is not None
    assert table.shape == (jobs, 3, 1)
    assert torch.equal(table[:, 1, 0], torch.full((jobs,), 4.0 * 2 ** 0.5))  # |7 - 3| * sqrt 2


def test_held_parameters_are_copies_and_keep_needs_nothing_held() -> None:
    param = torch.zeros(3, 1)
    held = HeldSteps([param], record_params=True)
    held.hold([torch.ones(3, 1)], [param])
    param.add_(5.0)  # the run updates its parameters in place next step
    with pytest.raises(RuntimeError, match="settle"):
        held.keep(torch.tensor([0, 2]))
    table = held.settle()
    assert table is not None
    assert torch.equal(table[:, 3, 0], torch.zeros(3))
    held.keep(torch.tensor([2, 0]))
    held.hold([torch.ones(2, 1)], [torch.full((2, 1), 1.0)])
    table = held.settle()
    assert table is not None
    assert torch.equal(table[:, 1, 0], torch.ones(2))  # from the kept rows' last values


@pytest.mark.parametrize("problem", ["seed", "mlp"])
def test_settling_every_step_or_rarely_gives_the_same_fused_histories(
        problem: str, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = grid(PROBLEMS[problem], {"name": "SGD"}, "momentum", [0.0, 0.9],
               [0.002 * LR_SCALE[problem], 0.01 * LR_SCALE[problem]])
    rarely, _, _ = run_both(raw)
    monkeypatch.setattr(norms, "HOLD_ELEMENTS", 1)
    every_step, _, _ = run_both(raw)
    for index in range(len(raw)):
        assert every_step.history(index) == rarely.history(index)
