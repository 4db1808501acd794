"""Fused sweeps against the same jobs run alone: every optimizer and schedule the fused
engine covers, on the seed problem, Rosenbrock, linear regression and an MLP on mini-batches."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from optimlab.worker.engine.fused import probe
from optimlab.worker.engine.fused.loop import run_fused
from optimlab.worker.engine.fused.plan import fusion_key
from optimlab.worker.engine.fused.probe import choose_mode
from optimlab.worker.engine.fused.stacked import Mode, build_stacked, modes
from optimlab.worker.engine.loop import run_training
from optimlab.worker.engine.shared_problems import problem_key
from optimlab.worker.engine.sink import ListSink
from optimlab.worker.spec import JobSpec
from tests.worker.engine.fused.fusing import (
    LR_SCALE,
    PROBLEMS,
    CollectingSink,
    assert_fused_equals_alone,
    grid,
    run_both,
)
from tests.worker.engine.histories import assert_same_history

# (optimizer with its fixed options, the second axis, its two values, two learning rates)
OPTIMIZERS: dict[str, tuple[dict[str, Any], str, list[Any], list[float]]] = {
    "sgd-momentum": ({"name": "SGD"}, "momentum", [0.5, 0.9], [0.002, 0.01]),
    "sgd-nesterov": ({"name": "SGD", "nesterov": True}, "momentum", [0.5, 0.9], [0.002, 0.01]),
    "sgd-weight-decay": ({"name": "SGD", "momentum": 0.9}, "weight_decay", [0.0, 0.05],
                         [0.002, 0.01]),
    "adam": ({"name": "Adam"}, "betas", [[0.9, 0.999], [0.8, 0.99]], [0.01, 0.05]),
    "adamw": ({"name": "AdamW"}, "weight_decay", [0.0, 0.1], [0.01, 0.05]),
    "rmsprop": ({"name": "RMSprop"}, "alpha", [0.9, 0.99], [0.001, 0.005]),
    "adagrad": ({"name": "Adagrad"}, "lr_decay", [0.0, 0.01], [0.05, 0.2]),
}
# (schedule with its fixed options, the schedule's axis, its two values)
SCHEDULES: dict[str, tuple[dict[str, Any], str, list[Any]]] = {
    "StepLR": ({"name": "StepLR", "step_size": 10}, "gamma", [0.5, 0.8]),
    "MultiStepLR": ({"name": "MultiStepLR", "milestones": [15, 40]}, "gamma", [0.1, 0.5]),
    "ExponentialLR": ({"name": "ExponentialLR"}, "gamma", [0.95, 0.99]),
    "CosineAnnealingLR": ({"name": "CosineAnnealingLR"}, "eta_min", [0.0, 1e-4]),
    "OneCycleLR": ({"name": "OneCycleLR", "max_lr": 0.02}, "pct_start", [0.3, 0.5]),
    "LinearLR": ({"name": "LinearLR", "total_iters": 30}, "start_factor", [0.25, 0.5]),
    "LambdaLR": ({"name": "LambdaLR"}, "lr_lambda", ["0.98**step", "1 / (1 + 0.05*step)"]),
    "CyclicLR": ({"name": "CyclicLR", "base_lr": 0.001, "max_lr": 0.01, "step_size_up": 10},
                 "mode", ["triangular", "triangular2"]),
}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_each_optimizer_fused_equals_alone(problem: str, optimizer: str) -> None:
    options, axis, values, lrs = OPTIMIZERS[optimizer]
    scale = LR_SCALE[problem]
    raw = grid(PROBLEMS[problem], options, axis, values, [lr * scale for lr in lrs])
    assert len(raw) == 8
    assert assert_fused_equals_alone(raw) <= 1e-6


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_each_schedule_fused_equals_alone(problem: str, schedule: str) -> None:
    sched, axis, values = SCHEDULES[schedule]
    optimizer = {"name": "SGD", "momentum": 0.9}
    scale = LR_SCALE[problem]
    raw = grid(PROBLEMS[problem], optimizer, axis, values, [0.002 * scale, 0.01 * scale],
               schedule=sched, schedule_axis=axis)
    assert assert_fused_equals_alone(raw) <= 1e-6


def test_cycled_beta1_fused_equals_alone() -> None:
    raw = grid(PROBLEMS["linreg"], {"name": "Adam"}, "pct_start", [0.3, 0.5], [0.01, 0.02],
               schedule={"name": "OneCycleLR", "max_lr": 0.05}, schedule_axis="pct_start")
    assert assert_fused_equals_alone(raw) <= 1e-6


def test_the_seed_problem_is_bit_identical() -> None:
    raw = grid(PROBLEMS["seed"], {"name": "SGD"}, "momentum", [0.0, 0.9], [0.001, 0.01])
    sink, _, alone = run_both(raw)
    for index, (history, _) in enumerate(alone):
        assert sink.history(index) == history


def test_a_diverging_job_ends_alone_and_the_others_are_unchanged() -> None:
    raw = grid(PROBLEMS["seed"], {"name": "SGD"}, "momentum", [0.0, 0.9], [0.001, 0.01])
    raw[3] = {**raw[3], "optimizer": {"name": "SGD", "lr": 0.6}}  # x**2 -> 16 blows up
    sink, summaries, alone = run_both(raw)

    assert summaries[3].outcome == "diverged"
    assert summaries[3].diverged_at == alone[3][1].diverged_at is not None
    for index, (history, summary) in enumerate(alone):
        assert_same_history(sink.history(index), history)
        assert summaries[index].outcome == summary.outcome


def test_a_job_whose_sink_says_stop_is_cancelled_alone() -> None:
    raw = grid({**PROBLEMS["seed"], "steps": 400}, {"name": "SGD"}, "momentum", [0.0, 0.9],
               [0.001, 0.01])
    sink, summaries, alone = run_both(raw, stop=[5], flush_seconds=0.0)  # flush every step

    assert summaries[5].outcome == "cancelled"
    assert summaries[5].steps_done == 1  # the first flush, after step 0, says stop
    assert sink.history(5)["loss"] == alone[5][0]["loss"][:1]
    for index, (history, _) in enumerate(alone):
        if index != 5:
            assert summaries[index].outcome == "completed"
            assert_same_history(sink.history(index), history)


def test_targets_and_patience_stop_each_job_on_its_own_step() -> None:
    base = {**PROBLEMS["linreg"], "steps": 200, "eval_every": 5}
    raw = grid(base, {"name": "SGD"}, "momentum", [0.0, 0.9], [0.003, 0.03])
    raw[0] = {**raw[0], "stop": {"loss_below": 0.5}}
    raw[1] = {**raw[1], "stop": {"patience": 2}}
    raw[2] = {**raw[2], "stop": {"converge_tol": 0.01, "converge_steps": 3}}
    raw[3] = {**raw[3], "diverge_factor": 2.0}
    assert assert_fused_equals_alone(raw) <= 1e-6


def probe_difference(specs: list[JobSpec], mode: Mode) -> str | None:
    """What differs between the first and last job, all jobs fused in ``mode`` for the
    probe's steps, and alone (None: nothing)."""
    sample = [probe._short(spec) for spec in specs]
    ends = [0, len(sample) - 1]
    fused = probe._Collect(ends)
    run_fused(sample, fused, mode=mode)
    for index in ends:
        alone = ListSink()
        run_training(sample[index], alone)
        if (found := probe._first_difference(alone.points, fused.points[index])) is not None:
            return found
    return None


DIGITS = {"model": {"kind": "mlp", "hidden": [32]},
          "data": {"kind": "sklearn", "name": "digits", "standardize": True},
          "batch_size": 32, "steps": 70}


@pytest.mark.parametrize("problem", ["seed", "linreg", "digits"])
def test_the_probe_picks_the_fastest_mode_that_changes_no_number(problem: str) -> None:
    base = DIGITS if problem == "digits" else PROBLEMS[problem]
    raw = grid(base, {"name": "SGD"}, "momentum", [0.0, 0.9], [0.001, 0.01])
    specs = [JobSpec.model_validate(r) for r in raw]

    chosen, reason = choose_mode(specs)

    # Expressions are element-wise: broadcast runs each job's very operations on its
    # elements. Whether a batched product sums as a job's own does depends on the BLAS
    # library and the CPU, so for the networks the test checks the rule, not a mode: every
    # faster mode changes a number here, the chosen one none. per_job makes a job's own
    # calls and always qualifies.
    if problem == "seed":
        assert chosen == "broadcast"
    assert chosen is not None, reason
    order = modes(specs[0])
    for faster in order[:order.index(chosen)]:
        assert probe_difference(specs, faster) is not None, faster
    assert probe_difference(specs, chosen) is None


@pytest.mark.parametrize("optimizer", ["sgd-momentum", "adam"])
def test_a_digits_mlp_fuses_with_the_same_numbers(optimizer: str) -> None:
    base = {"model": {"kind": "mlp", "hidden": [64, 32]},
            "data": {"kind": "sklearn", "name": "digits", "standardize": True,
                     "val_fraction": 0.2},
            "batch_size": 32, "steps": 120, "eval_every": 40}
    options, axis, values, lrs = OPTIMIZERS[optimizer]
    raw = grid(base, options, axis, values, lrs)
    assert assert_fused_equals_alone(raw) <= 1e-6


def test_standardised_regression_targets_fuse_with_the_same_numbers() -> None:
    base = {"model": {"kind": "mlp", "hidden": [16]},
            "data": {"kind": "sklearn", "name": "diabetes", "standardize": True,
                     "standardize_targets": True, "val_fraction": 0.2},
            "batch_size": 32, "steps": 60, "eval_every": 20}
    raw = grid(base, {"name": "SGD"}, "momentum", [0.0, 0.9], [0.005, 0.02])
    assert assert_fused_equals_alone(raw) <= 1e-6
    # the targets are scaled: the first losses are about 1, not diabetes' ~29,000
    _, _, alone = run_both(raw[:1])
    assert alone[0][0]["loss"][0] < 10.0


def test_jobs_that_differ_in_standardize_targets_share_no_data_preparation() -> None:
    data: dict[str, Any] = {"kind": "sklearn", "name": "diabetes"}
    base = {"model": {"kind": "linear"}, "data": data,
            "optimizer": {"name": "SGD", "lr": 0.01}, "steps": 5}
    scaled = {**base, "data": {**data, "standardize_targets": True}}
    specs = [JobSpec.model_validate(r) for r in (base, scaled)]
    assert problem_key(specs[0]) != problem_key(specs[1])
    assert fusion_key(specs[0])[0] != fusion_key(specs[1])[0]


@pytest.mark.parametrize("problem", ["seed", "mlp"])
def test_a_run_from_a_shared_build_equals_a_run_that_builds(problem: str) -> None:
    raw = grid(PROBLEMS[problem], {"name": "SGD"}, "momentum", [0.0, 0.9],
               [0.002 * LR_SCALE[problem], 0.01 * LR_SCALE[problem]])
    specs = [JobSpec.model_validate(r) for r in raw]
    built = build_stacked(specs, device="cpu")
    initial = [p.detach().clone() for p in built.params]
    mode, reason = choose_mode(specs, built=built)
    assert mode is not None, reason

    shared, own = CollectingSink(len(specs)), CollectingSink(len(specs))
    run_fused(specs, shared, mode=mode, built=built)
    run_fused(specs, own, mode=mode)

    assert shared.in_step_order() == own.in_step_order()
    assert all(torch.equal(a, b) for a, b in zip(built.params, initial, strict=True))
    with pytest.raises(ValueError, match="of 8 jobs for 7 specs"):
        run_fused(specs[:7], CollectingSink(7), built=built)
