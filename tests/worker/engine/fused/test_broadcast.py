"""The broadcast mode: an expression evaluated once on the stacked parameters, each job's
loss reduced over its own elements. Chosen where the job dimension cannot meet another one,
with every job's numbers exactly those it has alone; passed over everywhere else."""

from __future__ import annotations

from typing import Any

import pytest

from optimlab.worker.engine.fused import probe
from optimlab.worker.engine.fused.probe import choose_mode
from optimlab.worker.engine.fused.stacked import StackedProblem, build_stacked, modes
from optimlab.worker.spec import JobSpec
from tests.worker.engine.fused.fusing import PROBLEMS, grid, run_both

# One-element parameters (a list of one and a scalar) over a column of synthetic data whose
# rows differ by seed, so every job has its own split: mini-batches and a validation split.
LINE: dict[str, Any] = {
    "model": {"kind": "expression", "expression": "w*x0 + b",
              "parameters": {"w": [0.5], "b": 0.0}},
    "data": {"kind": "synthetic", "generator": "linear", "samples": 64, "features": 1,
             "val_fraction": 0.25},
    "batch_size": 8, "steps": 60, "eval_every": 20}
# The same data for every job: columns of [rows], not [jobs, rows].
INLINE_LINE: dict[str, Any] = {
    "model": {"kind": "expression", "expression": "w*u + b",
              "parameters": {"w": 0.0, "b": 0.0}},
    "data": {"kind": "inline", "inputs": {"u": [0.0, 1.0, 2.0, 3.0, 4.0]},
             "targets": [1.0, 3.0, 5.0, 7.0, 9.0]},
    "batch_size": 2, "steps": 60, "eval_every": 10}

# (base spec, learning rates, whether every job has the same data)
BROADCAST: dict[str, tuple[dict[str, Any], list[float], bool]] = {
    "seed": (PROBLEMS["seed"], [0.001, 0.01], True),
    "rosenbrock": (PROBLEMS["rosenbrock"], [0.0002, 0.0005], True),
    "line": (LINE, [0.01, 0.05], False),
    "inline-line": (INLINE_LINE, [0.01, 0.03], True),
    "line-l1-full-batch": ({**LINE, "loss": "l1", "batch_size": None}, [0.01, 0.05], False),
    "line-huber-functions": ({**LINE, "loss": "huber",
                              "model": {"kind": "expression",
                                        "expression": "w*tanh(x0) + exp(b*x0)/3 - sqrt(b**2)",
                                        "parameters": {"w": [0.5], "b": [0.1]}}},
                             [0.01, 0.05], False),
}
# Broadcast not offered: a parameter of several elements, a function that sums over elements.
NOT_OFFERED: dict[str, dict[str, Any]] = {
    "vector": {"model": {"kind": "expression", "expression": "w**2",
                         "parameters": {"w": [1.0, 2.0, 3.0]}},
               "data": {"kind": "inline", "targets": [4.0, 5.0, 6.0]}, "steps": 60},
    "sum": {"model": {"kind": "expression", "expression": "sum((w*u - 1)**2)",
                      "parameters": {"w": [1.0]}},
            "data": {"kind": "inline", "inputs": {"u": [1.0, 2.0]}}, "loss": "none",
            "steps": 60},
}
# Offered (one-element parameters, no reduction) but not fit for these data: loss "none" of
# an expression over a column.
OVER_A_COLUMN: dict[str, Any] = {
    "model": {"kind": "expression", "expression": "(w*u - 1)**2", "parameters": {"w": [1.0]}},
    "data": {"kind": "inline", "inputs": {"u": [2.0]}}, "loss": "none", "steps": 60}


def assert_bit_identical(raw: list[dict[str, Any]]) -> None:
    sink, summaries, alone = run_both(raw)
    for index, (history, summary) in enumerate(alone):
        assert sink.history(index) == history, index
        fused = summaries[index]
        assert (fused.outcome, fused.steps_done, fused.final_loss, fused.best_loss) == \
            (summary.outcome, summary.steps_done, summary.final_loss, summary.best_loss), index


def sgd_grid(base: dict[str, Any], lrs: list[float]) -> list[dict[str, Any]]:
    return grid(base, {"name": "SGD"}, "momentum", [0.0, 0.9], lrs)


@pytest.mark.parametrize("problem", sorted(BROADCAST))
def test_broadcast_is_chosen_and_every_job_has_its_numbers_alone(problem: str) -> None:
    base, lrs, shared = BROADCAST[problem]
    raw = sgd_grid(base, lrs)
    specs = [JobSpec.model_validate(r) for r in raw]

    assert modes(specs[0])[0] == "broadcast"
    assert choose_mode(specs) == ("broadcast", None)
    stacked = build_stacked(specs, device="cpu")
    assert stacked.mode == "broadcast"
    assert stacked.train.shared is shared
    assert_bit_identical(raw)


def test_a_wide_seed_sweep_broadcast_is_bit_identical() -> None:
    # 48 one-element jobs: element-wise kernels take their vectorised paths, as they do in
    # a real sweep (the probe's two jobs do not)
    lrs = [0.0005 * (k + 1) for k in range(12)]
    raw = grid(PROBLEMS["seed"], {"name": "Adam"}, "betas", [[0.9, 0.999], [0.8, 0.99]], lrs)
    assert len(raw) == 48
    assert_bit_identical(raw)


@pytest.mark.parametrize("problem", sorted(NOT_OFFERED))
def test_broadcast_is_not_offered_where_jobs_could_mix(problem: str) -> None:
    raw = sgd_grid(NOT_OFFERED[problem], [0.001, 0.01])
    specs = [JobSpec.model_validate(r) for r in raw]

    assert "broadcast" not in modes(specs[0])
    assert choose_mode(specs) == ("vmap", None)
    with pytest.raises(ValueError, match="cannot run broadcast"):
        build_stacked(specs, device="cpu", mode="broadcast")
    assert_bit_identical(raw)


def test_data_broadcast_does_not_fit_fall_back_to_vmap() -> None:
    raw = sgd_grid(OVER_A_COLUMN, [0.001, 0.01])
    specs = [JobSpec.model_validate(r) for r in raw]

    assert modes(specs[0])[0] == "broadcast"
    with pytest.raises(ValueError, match="loss 'none' of an expression over columns"):
        build_stacked(specs, device="cpu", mode="broadcast")
    assert build_stacked(specs, device="cpu").mode == "vmap"  # run_fused's default
    assert choose_mode(specs) == ("vmap", None)  # the probe passes over the failing mode
    assert_bit_identical(raw)


def test_the_probe_passes_over_a_mode_that_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    specs = [JobSpec.model_validate(r) for r in sgd_grid(PROBLEMS["seed"], [0.001, 0.01])]

    def fail(*args: Any) -> None:
        raise RuntimeError("no broadcast today")

    monkeypatch.setattr(StackedProblem, "_losses_broadcast", fail)
    assert choose_mode(specs) == ("vmap", None)

    monkeypatch.setattr(probe, "modes", lambda spec: ["broadcast"])
    mode, reason = choose_mode(specs)
    assert mode is None
    assert reason is not None
    assert "broadcast: fails (RuntimeError: no broadcast today)" in reason
