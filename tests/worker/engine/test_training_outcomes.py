"""How a run ends, and what its summary says: every outcome the engine can report.

completed, diverged (a non-finite loss, or one above ``diverge_factor`` x the first),
reached_target (``stop.loss_below``), stopped (``stop.patience`` evaluations without a
better val_loss, or ``stop.max_seconds``), converged (``stop.converge_tol``), cancelled (the
sink says stop). Where a run must stop at a given step, that step is derived from the
history of the same run without the stop condition, never written down.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import time
from collections.abc import Sequence
from typing import Any

import pytest

from optimlab.worker.engine import (
    ListSink,
    MetricPoint,
    TrainingSummary,
    run_training,
    validate_spec,
)
from optimlab.worker.engine.sink import JobUpdate
from optimlab.worker.spec import JobSpec
from tests.seed_table import SEED_SPEC

History = dict[str, list[float]]
SEED: dict[str, Any] = {**SEED_SPEC, "device": "cpu"}
# A 3-row least-squares line whose curvature makes SGD(lr=0.25) overshoot a bit more at every
# step: the loss grows geometrically but stays finite for hundreds of steps.
GROWING: dict[str, Any] = {
    "model": {"kind": "expression", "expression": "w*u", "parameters": {"w": 0.0}},
    "data": {"kind": "inline", "inputs": {"u": [1.0, 2.0, 3.0]}, "targets": [2.0, 4.0, 6.0]},
    "optimizer": {"name": "SGD", "lr": 0.25},
    "steps": 40,
    "device": "cpu",
}
# A wide MLP on 30 noisy rows: val_loss bottoms out early, then rises (overfitting).
OVERFITTING: dict[str, Any] = {
    "model": {"kind": "mlp", "hidden": [64, 64]},
    "data": {"kind": "synthetic", "generator": "nonlinear", "samples": 40, "noise": 0.5,
             "val_fraction": 0.25, "standardize": True},
    "optimizer": {"name": "Adam", "lr": 0.01},
    "steps": 200,
    "eval_every": 5,
    "device": "cpu",
}


def job(base: dict[str, Any], **changes: Any) -> JobSpec:
    raw = copy.deepcopy(base)
    raw.update(changes)
    return JobSpec.model_validate(raw)


def run(spec: JobSpec, sink: ListSink | None = None, **options: Any
        ) -> tuple[History, TrainingSummary, list[MetricPoint]]:
    sink = sink or ListSink()
    validate_spec(spec)
    summary = run_training(spec, sink, **options)
    names = sorted({name for _, name, _ in sink.points})
    return {name: sink.series(name) for name in names}, summary, sink.points


def steps_of(points: list[MetricPoint], name: str) -> list[int]:
    return sorted(step for step, n, _ in points if n == name)


def first(condition: list[bool]) -> int:
    return condition.index(True)


# --------------------------------------------------------------------------- completed


def test_a_run_that_goes_the_distance_is_completed_and_summarised() -> None:
    spec = job(OVERFITTING, steps=None, epochs=6, batch_size=8)
    history, summary, points = run(spec)
    losses = history["loss"]
    assert summary.outcome == "completed"
    assert summary.stop_reason is None
    assert summary.diverged_at is None
    assert summary.reached_at is None
    # 30 training rows in batches of 8: 4 steps an epoch.
    assert summary.steps == summary.steps_done == len(losses) == 24
    assert summary.epochs_done == 6
    assert summary.loss == "mse"
    assert summary.device == "cpu"
    assert summary.parameter_count == (2 * 64 + 64) + (64 * 64 + 64) + (64 * 1 + 1)  # 2 features
    assert summary.initial_loss == losses[0]
    assert summary.final_loss == losses[-1]
    assert summary.best_loss == min(losses)
    assert summary.best_step == losses.index(min(losses))
    assert summary.wall_seconds > 0
    assert summary.steps_per_second is not None
    assert summary.steps_per_second > 0
    # Evaluations every 5 steps and at the last one; the summary keeps the latest and the
    # best val_loss with its step.
    assert steps_of(points, "val_loss") == [4, 9, 14, 19, 23]
    assert summary.evaluation == {"train_loss_full": history["train_loss_full"][-1],
                                  "val_loss": history["val_loss"][-1]}
    assert summary.best_val_loss == min(history["val_loss"])
    best = history["val_loss"].index(min(history["val_loss"]))
    assert summary.best_val_step == steps_of(points, "val_loss")[best]
    assert json.loads(json.dumps(summary.as_dict())) == summary.as_dict()


def test_classification_summaries_carry_accuracies() -> None:
    spec = JobSpec.model_validate({
        "model": {"kind": "logistic"}, "device": "cpu",
        "data": {"kind": "sklearn", "name": "iris", "val_fraction": 0.2, "standardize": True},
        "optimizer": {"name": "SGD", "lr": 0.5}, "steps": 20, "eval_every": 10})
    history, summary, _ = run(spec)
    assert summary.loss == "cross_entropy"
    assert summary.evaluation is not None
    assert set(summary.evaluation) == {"train_loss_full", "train_accuracy", "val_loss",
                                       "val_accuracy"}
    assert summary.evaluation["val_accuracy"] == history["val_accuracy"][-1]
    assert all(0 <= v <= 1 for v in history["train_accuracy"] + history["val_accuracy"])


# --------------------------------------------------------------------------- diverged


def test_a_non_finite_loss_ends_the_run_as_diverged() -> None:
    history, summary, points = run(job(SEED, optimizer={"name": "SGD", "lr": 10.0}, steps=50))
    losses = history["loss"]
    assert summary.outcome == "diverged"
    assert summary.stop_reason == "non-finite loss"
    assert not math.isfinite(losses[-1])
    assert all(math.isfinite(v) for v in losses[:-1])
    assert summary.diverged_at == len(losses) - 1 == summary.steps_done - 1
    assert summary.steps == 50
    assert summary.best_loss == min(losses[:-1])
    # That step recorded its lr and its loss, and stopped before backward.
    assert steps_of(points, "lr")[-1] == summary.diverged_at
    assert steps_of(points, "grad_norm")[-1] == summary.diverged_at - 1
    assert steps_of(points, "param.x")[-1] == summary.diverged_at - 1


def test_diverge_factor_stops_a_growing_loss_before_it_overflows() -> None:
    free, free_summary, _ = run(job(GROWING))
    assert free_summary.outcome == "completed"
    assert all(math.isfinite(v) for v in free["loss"])
    factor = 10.0
    expected = first([v > factor * free["loss"][0] for v in free["loss"]])
    assert 0 < expected < len(free["loss"]) - 1

    history, summary, _ = run(job(GROWING, diverge_factor=factor))
    assert summary.outcome == "diverged"
    assert summary.diverged_at == expected
    assert summary.stop_reason is not None
    assert str(factor) in summary.stop_reason
    assert history["loss"] == free["loss"][:expected + 1]
    assert history["param.w"] == free["param.w"][:expected]


def test_diverge_factor_leaves_a_falling_loss_alone() -> None:
    _, summary, _ = run(job(SEED, diverge_factor=1.5))
    assert summary.outcome == "completed"


# --------------------------------------------------------------------------- reached_target


@pytest.mark.parametrize("optimizer", [{"name": "SGD", "lr": 0.01},
                                       {"name": "LBFGS", "line_search_fn": "strong_wolfe",
                                        "max_iter": 2}])
def test_loss_below_the_target_ends_the_run_as_reached(optimizer: dict[str, Any]) -> None:
    free, _, _ = run(job(SEED, optimizer=optimizer))
    target = 1e-3
    expected = first([v < target for v in free["loss"]])
    assert 0 < expected < len(free["loss"]) - 1

    history, summary, _ = run(job(SEED, optimizer=optimizer, stop={"loss_below": target}))
    assert summary.outcome == "reached_target"
    assert summary.reached_at == expected == summary.steps_done - 1
    assert summary.final_loss == free["loss"][expected] < target
    assert history["loss"] == free["loss"][:expected + 1]
    # A plain optimizer stops before backward; LBFGS computes its loss inside its step, so
    # the step is taken (and recorded) before the check.
    updated = expected + 1 if optimizer["name"] == "LBFGS" else expected
    assert history["param.x"] == free["param.x"][:updated]


# --------------------------------------------------------------------------- stopped


def patience_stop(val_losses: list[float], patience: int, min_delta: float) -> int | None:
    """The evaluation at which the patience rule stops, by the rule's own words."""
    best, bad = math.inf, 0
    for k, value in enumerate(val_losses):
        if value < best - min_delta:
            best, bad = value, 0
        else:
            bad += 1
            if bad >= patience:
                return k
    return None


@pytest.mark.parametrize(("patience", "min_delta"), [(4, 0.0), (2, 0.05)])
def test_patience_stops_when_val_loss_stops_improving(patience: int, min_delta: float) -> None:
    free, _, free_points = run(job(OVERFITTING))
    evaluation = patience_stop(free["val_loss"], patience, min_delta)
    assert evaluation is not None, "the free run never runs out of patience"
    expected = steps_of(free_points, "val_loss")[evaluation]
    assert expected < OVERFITTING["steps"] - 1

    history, summary, _ = run(job(OVERFITTING, stop={"patience": patience,
                                                     "min_delta": min_delta}))
    assert summary.outcome == "stopped"
    assert summary.stop_reason is not None
    assert "val_loss" in summary.stop_reason
    assert summary.steps_done == expected + 1
    assert history["val_loss"] == free["val_loss"][:evaluation + 1]
    assert summary.best_val_loss == min(free["val_loss"][:evaluation + 1])


def test_patience_with_a_frozen_model_stops_after_patience_evaluations() -> None:
    # lr 0: val_loss never changes; the first evaluation sets the best, each later one is
    # a bad one, so the run stops at evaluation patience + 1.
    every, patience = 3, 4
    spec = job(OVERFITTING, optimizer={"name": "SGD", "lr": 0.0}, eval_every=every,
               stop={"patience": patience})
    history, summary, _ = run(spec)
    assert summary.outcome == "stopped"
    assert summary.steps_done == (patience + 1) * every
    assert len(set(history["val_loss"])) == 1


def test_patience_alongside_a_plateau_schedule_watching_val_loss() -> None:
    spec = job(OVERFITTING, stop={"patience": 4},
               schedule={"name": "ReduceLROnPlateau", "monitor": "val_loss", "patience": 1})
    history, summary, _ = run(spec)
    assert summary.outcome == "stopped"
    assert summary.steps_done < OVERFITTING["steps"]
    assert len(set(history["lr"])) > 1  # the schedule cut the lr at evaluations


def test_max_seconds_stops_a_long_run() -> None:
    spec = job(SEED, steps=10_000_000, stop={"max_seconds": 0.05})
    started = time.perf_counter()
    history, summary, _ = run(spec)
    assert time.perf_counter() - started < 60
    assert summary.outcome == "stopped"
    assert summary.stop_reason is not None
    assert "max_seconds" in summary.stop_reason
    assert 0 < summary.steps_done < spec.steps  # type: ignore[operator]
    assert len(history["loss"]) == summary.steps_done
    assert summary.wall_seconds >= 0.05


def test_max_seconds_follows_the_clock_it_is_given() -> None:
    # A clock that advances one second per reading: 5 seconds pass within a few steps.
    ticks = itertools.count()
    spec = job(SEED, steps=1000, stop={"max_seconds": 5})
    _, summary, _ = run(spec, clock=lambda: float(next(ticks)))
    assert summary.outcome == "stopped"
    assert 1 <= summary.steps_done <= 5


# --------------------------------------------------------------------------- converged


def consecutive_stop(update_norms: list[float], tol: float, calm: int) -> int:
    """The first step ending ``calm`` consecutive updates of at most ``tol``."""
    small = [v <= tol for v in update_norms]
    return first([i >= calm - 1 and all(small[i - calm + 1:i + 1]) for i in range(len(small))])


MOMENTUM_SEED = SEED | {"optimizer": {"name": "SGD", "lr": 0.002, "momentum": 0.9},
                        "steps": 150}


@pytest.mark.parametrize(("base", "tol", "calm"), [
    (SEED, 0.0, 3),  # x reaches 4 exactly, then SGD stands still
    (GROWING | {"optimizer": {"name": "SGD", "lr": 0.1}, "steps": 200}, 1e-4, 5),
    # momentum swings around 4: single small updates at the turning points come long
    # before updates stay small
    (MOMENTUM_SEED, 3e-3, 3),
])
def test_converged_when_updates_stay_small(base: dict[str, Any], tol: float, calm: int) -> None:
    free, _, _ = run(job(base))
    expected = consecutive_stop(free["update_norm"], tol, calm)
    assert expected < len(free["update_norm"]) - 1

    history, summary, _ = run(job(base, stop={"converge_tol": tol, "converge_steps": calm}))
    assert summary.outcome == "converged"
    assert summary.stop_reason is not None
    assert "update_norm" in summary.stop_reason
    assert summary.steps_done == expected + 1
    assert history["update_norm"] == free["update_norm"][:expected + 1]


def test_isolated_small_updates_are_not_convergence() -> None:
    free, _, _ = run(job(MOMENTUM_SEED))
    tol, calm = 3e-3, 3
    small = [v <= tol for v in free["update_norm"]]
    counted = first([sum(small[:i + 1]) >= calm for i in range(len(small))])
    # The case means something: small updates add up to `calm` well before they come in a row.
    assert counted < consecutive_stop(free["update_norm"], tol, calm)
    _, summary, _ = run(job(MOMENTUM_SEED, stop={"converge_tol": tol, "converge_steps": calm}))
    assert summary.steps_done > counted + 1


# --------------------------------------------------------------------------- cancelled


class StoppingSink(ListSink):
    """Asks the run to stop on its ``stop_at``-th write."""

    def __init__(self, stop_at: int) -> None:
        super().__init__()
        self.stop_at = stop_at
        self.writes = 0

    def write(self, updates: Sequence[JobUpdate]) -> list[bool]:
        super().write(updates)
        self.writes += 1
        return [self.writes < self.stop_at] * len(updates)


@pytest.mark.parametrize("stop_at", [1, 3])
def test_a_sink_returning_false_cancels_the_run(stop_at: int) -> None:
    sink = StoppingSink(stop_at)
    # flush_seconds=0: the recorder hands over after every step.
    history, summary, _ = run(job(SEED), sink, flush_seconds=0.0)
    assert summary.outcome == "cancelled"
    assert summary.stop_reason is None
    assert summary.steps_done == stop_at
    # What the run did before it stopped is kept, up to the last step, by a final write.
    assert len(history["loss"]) == len(history["param.x"]) == stop_at
    assert sink.writes == stop_at + 1
    assert sink.summaries[-1].outcome == "cancelled"


def test_a_sink_that_never_objects_sees_the_whole_run() -> None:
    sink = StoppingSink(10**9)
    history, summary, _ = run(job(SEED), sink, flush_seconds=0.0)
    assert summary.outcome == "completed"
    assert len(history["loss"]) == 20


@pytest.mark.parametrize("schedule", [
    {"name": "OneCycleLR", "max_lr": 0.5},
    {"name": "CyclicLR", "base_lr": 0.01, "max_lr": 0.5, "step_size_up": 3},
])
def test_cycling_schedules_cycle_momentum_only_where_the_optimizer_has_it(
        schedule: dict[str, Any]) -> None:
    def run(optimizer: dict[str, Any]) -> set[str]:
        spec = JobSpec.model_validate({
            "model": {"kind": "expression", "expression": "(1 - x)**2", "parameters": {"x": 0.0}},
            "loss": "none", "optimizer": optimizer, "schedule": schedule, "steps": 8})
        validate_spec(spec)
        sink = ListSink()
        run_training(spec, sink)
        assert len(set(sink.series("lr"))) > 1
        return {name for _, name, _ in sink.points}

    assert "momentum" not in run({"name": "Adagrad", "lr": 0.1})
    assert "momentum" in run({"name": "SGD", "lr": 0.1, "momentum": 0.9})
    assert "beta1" in run({"name": "Adam", "lr": 0.1})


def test_summary_reports_threshold_crossings_and_the_log_loss_area() -> None:
    spec = JobSpec.model_validate({**SEED_SPEC, "summary": {"thresholds": [100.0, 1.0, 1e-30]}})
    sink = ListSink()
    summary = run_training(spec, sink)
    losses = sink.series("loss")

    def first_at_most(threshold: float) -> int | None:
        return next((i for i, v in enumerate(losses) if v <= threshold), None)

    assert summary.steps_to == [{"threshold": t, "step": first_at_most(t)}
                                for t in (100.0, 1.0, 1e-30)]
    assert summary.steps_to_10x is None  # custom thresholds replace the defaults
    logs = [math.log10(max(v, 1.1754943508222875e-38)) for v in losses]
    area = sum((a + b) / 2 for a, b in itertools.pairwise(logs))
    assert summary.loss_area_log10 == pytest.approx(area, rel=1e-12)


def test_default_thresholds_are_ten_hundred_and_thousand_times_below_the_start() -> None:
    sink = ListSink()
    summary = run_training(JobSpec.model_validate(SEED_SPEC), sink)
    losses = sink.series("loss")
    expected = [next(i for i, v in enumerate(losses) if v <= losses[0] / f)
                for f in (10, 100, 1000)]

    assert [s["step"] for s in summary.steps_to] == expected
    assert [summary.steps_to_10x, summary.steps_to_100x, summary.steps_to_1000x] == expected
