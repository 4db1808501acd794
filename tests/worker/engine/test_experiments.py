"""The seed's questions, asked as experiments and answered by the engine's histories.

- Is a run reproducible, and where does the seed come in? (mini-batch order, initial
  weights, dropout; never the full-batch gradient of a fixed formula)
- Can a small MLP really learn handwritten digits? (Adam, 20 epochs: at least 95 %)
- Where is the "stochastic" in SGD? The same MLP with the same SGD(lr=0.1) on batches of
  1, of 32 and on the whole training set.

No expected number is written down: every assertion compares runs with each other or a
series with itself.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest
import torch

from optimlab.worker.engine import ListSink, TrainingSummary, run_training
from optimlab.worker.spec import JobSpec

History = dict[str, list[float]]

DIGITS: dict[str, Any] = {"kind": "sklearn", "name": "digits", "val_fraction": 0.2,
                          "standardize": True}
DIGITS_MLP: dict[str, Any] = {"kind": "mlp", "hidden": [128, 64]}
# 1797 digits, 20 % held out: 1438 training rows, i.e. 45 batches of 32 an epoch.
DIGITS_TRAIN_ROWS = 1797 - round(1797 * 0.2)


def run(raw: dict[str, Any]) -> tuple[History, TrainingSummary]:
    sink = ListSink()
    summary = run_training(JobSpec.model_validate({"device": "cpu", **raw}), sink)
    names = sorted({name for _, name, _ in sink.points})
    return {name: sink.series(name) for name in names}, summary


def increases(series: list[float]) -> int:
    """How often the series goes up from one value to the next."""
    return sum(b > a for a, b in itertools.pairwise(series))


# --------------------------------------------------------------------------- (a) seeds

DIABETES_LINE: dict[str, Any] = {
    "model": {"kind": "expression", "expression": "w*x2 + b",
              "parameters": {"w": 0.0, "b": 0.0}},
    "data": {"kind": "sklearn", "name": "diabetes", "standardize": True},
    "optimizer": {"name": "SGD", "lr": 0.05, "momentum": 0.5},
    "steps": 40,
}


def test_the_same_spec_and_seed_give_identical_histories() -> None:
    # Everything that draws random numbers at once: a split, initial weights, dropout,
    # shuffled mini-batches.
    raw = {"model": {"kind": "mlp", "hidden": [16], "dropout": 0.3},
           "data": {"kind": "synthetic", "generator": "spirals", "samples": 120,
                    "val_fraction": 0.25, "standardize": True},
           "optimizer": {"name": "Adam", "lr": 0.01}, "batch_size": 16, "epochs": 3,
           "eval_every": 4, "seed": 11}
    first, first_summary = run(raw)
    torch.manual_seed(12345)  # whatever a previous job left in the global RNG is irrelevant
    torch.rand(100)
    second, second_summary = run(copy.deepcopy(raw))
    assert first == second
    assert first_summary.final_loss == second_summary.final_loss
    assert first_summary.evaluation == second_summary.evaluation
    assert {"train_loss_full", "val_loss", "train_accuracy", "val_accuracy"} <= set(first)


def test_a_different_seed_draws_different_mini_batches() -> None:
    # A formula's initial values are the spec's and sklearn's data do not depend on the
    # seed: the only thing a seed changes here is the order of the mini-batches.
    histories = [run({**DIABETES_LINE, "batch_size": 16, "seed": seed})[0]
                 for seed in (0, 1)]
    assert histories[0]["loss"][0] != histories[1]["loss"][0]  # another first batch
    assert histories[0]["loss"] != histories[1]["loss"]
    assert histories[0]["param.w"] != histories[1]["param.w"]


def test_full_batch_gradient_descent_on_a_formula_ignores_the_seed() -> None:
    histories = [run({**DIABETES_LINE, "seed": seed})[0] for seed in (0, 1, 2**40)]
    assert histories[0] == histories[1] == histories[2]


def test_a_network_takes_its_initial_weights_from_the_seed() -> None:
    # The contrast: even on the full batch, a network's history depends on the seed,
    # because its weights are drawn (after torch.manual_seed(seed)) as a script draws them.
    raw = {"model": {"kind": "mlp", "hidden": [8]},
           "data": {"kind": "sklearn", "name": "iris", "standardize": True},
           "optimizer": {"name": "SGD", "lr": 0.1}, "steps": 10}
    first, _ = run({**raw, "seed": 0})
    same, _ = run({**raw, "seed": 0})
    other, _ = run({**raw, "seed": 1})
    assert first == same
    assert first["loss"][0] != other["loss"][0]


# --------------------------------------------------------------------------- (b) digits


def test_an_mlp_learns_digits_with_adam() -> None:
    raw = {"model": DIGITS_MLP, "data": DIGITS, "optimizer": {"name": "Adam", "lr": 1e-3},
           "batch_size": 32, "epochs": 20, "eval_every": 45, "seed": 0}
    history, summary = run(raw)
    assert summary.outcome == "completed"
    assert summary.steps == 20 * -(-DIGITS_TRAIN_ROWS // 32)
    assert summary.epochs_done == 20
    assert summary.evaluation is not None
    assert summary.evaluation["val_accuracy"] >= 0.95
    # It learnt: from chance level to the end, on held-out digits.
    assert history["val_accuracy"][0] < history["val_accuracy"][-1]
    assert history["val_loss"][-1] < history["val_loss"][0]
    assert len(history["val_accuracy"]) == 20  # once an epoch


# --------------------------------------------------------------------------- (c) batch size


@pytest.fixture(scope="module")
def sgd_batch_sizes() -> dict[str, History]:
    """The digits MLP with SGD(lr=0.1), every run from the same initial weights (seed 0).

    Batches of 1 and of 32 train for 2 epochs, i.e. on the same 2876 samples, recording
    ``train_loss_full`` every 160 samples (every 160 steps and every 5 steps). The full
    batch, cheap in steps, trains for 60 epochs with an evaluation every step (= epoch);
    its evaluation after 2 epochs is the one that saw as many samples as the others.
    """
    base = {"model": DIGITS_MLP, "data": DIGITS, "optimizer": {"name": "SGD", "lr": 0.1},
            "seed": 0}
    runs = {"1": {"batch_size": 1, "epochs": 2, "eval_every": 160},
            "32": {"batch_size": 32, "epochs": 2, "eval_every": 5},
            "full": {"epochs": 60, "eval_every": 1}}
    histories = {}
    for name, changes in runs.items():
        history, summary = run({**base, **changes})
        assert summary.outcome == "completed"
        histories[name] = history
    return histories


def test_full_batch_gradient_descent_never_goes_up(sgd_batch_sizes: dict[str, History]
                                                   ) -> None:
    # At lr 0.1 (no smaller lr needed): the loss on the whole training set, which is the
    # very function each full-batch step descends, falls at every one of the 60 steps.
    full = sgd_batch_sizes["full"]["train_loss_full"]
    assert len(full) == 60
    assert increases(full) == 0
    assert full[-1] < full[0]


def test_batches_of_one_are_noisy(sgd_batch_sizes: dict[str, History]) -> None:
    # One sample's gradient often points away from the whole set's: the full training
    # loss goes up between some evaluations, and ends above the best it had reached.
    single = sgd_batch_sizes["1"]["train_loss_full"]
    batch = sgd_batch_sizes["32"]["train_loss_full"]
    assert len(single) == len(batch) == 18
    assert increases(single) > 0
    assert single[-1] > min(single)
    # ...far more often than with batches of 32, which average the noise away.
    assert increases(single) > increases(batch)


def test_at_the_same_lr_and_samples_batches_of_32_go_furthest(
        sgd_batch_sizes: dict[str, History]) -> None:
    single = sgd_batch_sizes["1"]["train_loss_full"]
    batch = sgd_batch_sizes["32"]["train_loss_full"]
    full = sgd_batch_sizes["full"]["train_loss_full"]
    # After the same 2 epochs: 90 steps of 32 beat 2 full-batch steps, and lr 0.1 is too
    # large for single samples, whose noise keeps the loss above what batches of 32 reach.
    assert batch[-1] < full[1]
    assert batch[-1] < single[-1]
    # Even 30 times the samples (60 full-batch steps) do not catch up with 2 epochs in
    # batches of 32: more, noisier steps beat fewer exact ones here.
    assert batch[-1] < full[-1]
    # The price is the step count, not the samples: 2876 and 90 steps against 60.
    assert len(sgd_batch_sizes["1"]["loss"]) == 2 * DIGITS_TRAIN_ROWS
    assert len(sgd_batch_sizes["32"]["loss"]) == 2 * -(-DIGITS_TRAIN_ROWS // 32)
