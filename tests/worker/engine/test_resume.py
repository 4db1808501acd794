"""A run resumed from a checkpoint goes on exactly as the run that took it would have.

Each case runs once uninterrupted, handing its state to a checkpointer after every step
(serialised and read back as the worker's store does, ``torch.load(weights_only=True)``);
then, for several steps (the first, mid-epoch, an epoch's end, right before the last), a
fresh run resumed from that step's state must produce the rest of the history bit for bit,
and the same summary. Timing figures (``wall_seconds``, ``steps_per_second``; the worker's
``wall_time`` series) naturally differ between runs and are left out of the comparison.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import pytest
import torch

from optimlab.worker.engine import ListSink, MetricPoint, TrainingSummary, run_training
from optimlab.worker.engine.checkpoint import CheckpointPolicy, RunState
from optimlab.worker.engine.resume import ResumeError
from optimlab.worker.engine.sink import JobUpdate
from optimlab.worker.spec import JobSpec
from optimlab.worker.spec_errors import SpecError
from tests.worker.engine.memory_checkpointer import MemoryCheckpointer

TIMING = {"wall_seconds", "steps_per_second", "checkpoint_step", "resumed_from"}
DIGITS_MLP: dict[str, Any] = {
    "model": {"kind": "mlp", "hidden": [16], "dropout": 0.2},
    "data": {"kind": "synthetic", "generator": "blobs", "samples": 100, "features": 4,
             "classes": 3, "val_fraction": 0.2},
    "device": "cpu",
}
CASES: dict[str, dict[str, Any]] = {
    "sgd-momentum-dropout-onecycle": {
        **DIGITS_MLP, "optimizer": {"name": "SGD", "lr": 0.05, "momentum": 0.9},
        "schedule": {"name": "OneCycleLR", "max_lr": 0.2}, "batch_size": 16, "steps": 40,
        "eval_every": 7},
    "adam-steplr": {
        **DIGITS_MLP, "optimizer": {"name": "Adam", "lr": 0.01},
        "schedule": {"name": "StepLR", "step_size": 5, "gamma": 0.7}, "batch_size": 12,
        "steps": 30},
    "plateau-on-val-loss-with-patience": {
        **DIGITS_MLP, "model": {"kind": "mlp", "hidden": [32, 32]},
        "optimizer": {"name": "Adam", "lr": 0.05},
        "schedule": {"name": "ReduceLROnPlateau", "monitor": "val_loss", "patience": 1,
                     "factor": 0.5},
        "batch_size": 8, "steps": 60, "eval_every": 3,
        "stop": {"patience": 4, "min_delta": 0.001}},
    "lbfgs-closure": {
        "model": {"kind": "expression", "expression": "(1 - x)**2 + 100*(y - x**2)**2",
                  "parameters": {"x": -1.5, "y": 2.0}},
        "optimizer": {"name": "LBFGS", "lr": 0.5, "max_iter": 4, "history_size": 3},
        "steps": 12, "device": "cpu"},
    "epochs-drop-last-sequential": {
        **DIGITS_MLP, "optimizer": {"name": "SGD", "lr": 0.1, "nesterov": True,
                                    "momentum": 0.8},
        "schedule": {"name": "SequentialLR", "milestones": [6],
                     "schedulers": [{"name": "LinearLR", "start_factor": 0.2, "total_iters": 6},
                                    {"name": "ExponentialLR", "gamma": 0.95}]},
        "batch_size": 30, "drop_last": True, "epochs": 6},
    "full-batch-cyclic-chained": {
        **DIGITS_MLP, "optimizer": {"name": "SGD", "lr": 0.1, "momentum": 0.5},
        "schedule": {"name": "ChainedScheduler",
                     "schedulers": [{"name": "CyclicLR", "base_lr": 0.01, "max_lr": 0.1,
                                     "step_size_up": 4},
                                    {"name": "ExponentialLR", "gamma": 0.99}]},
        "steps": 20, "eval_every": 5},
    "expression-rosenbrock-rmsprop-lambda": {
        "model": {"kind": "expression", "expression": "(1 - x)**2 + 100*(y - x**2)**2",
                  "parameters": {"x": -1.2, "y": 1.0}},
        "optimizer": {"name": "RMSprop", "lr": 0.001, "momentum": 0.5},
        "schedule": {"name": "LambdaLR", "lr_lambda": "0.99**step"},
        "steps": 25, "device": "cpu"},
}


def bits(points: list[MetricPoint]) -> list[tuple[int, str, bytes]]:
    """Points with their values as bytes: NaN equals NaN, -0.0 differs from 0.0."""
    return sorted((step, name, struct.pack("<d", value)) for step, name, value in points)


def comparable(summary: TrainingSummary) -> dict[str, Any]:
    return {k: v for k, v in summary.as_dict().items() if k not in TIMING}


def uninterrupted(raw: dict[str, Any]) -> tuple[JobSpec, ListSink, TrainingSummary,
                                                MemoryCheckpointer]:
    spec = JobSpec.model_validate(raw)
    sink, checkpointer = ListSink(), MemoryCheckpointer()
    summary = run_training(spec, sink, flush_seconds=3600, checkpointer=checkpointer)
    return spec, sink, summary, checkpointer


def resumed(spec: JobSpec, state: RunState) -> tuple[ListSink, TrainingSummary]:
    torch.manual_seed(987654321)  # a new process: its global generator is elsewhere
    sink = ListSink()
    return sink, run_training(spec, sink, flush_seconds=3600, resume=state)


def resume_steps(last: int, per_epoch: int | None) -> list[int]:
    steps = {0, 1, last // 2, last - 1}
    if per_epoch is not None:
        steps |= {per_epoch - 1, per_epoch, per_epoch + per_epoch // 2}
    return sorted(s for s in steps if 0 <= s < last)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_resumed_run_ends_as_the_uninterrupted_one_bit_for_bit(name: str) -> None:
    raw = CASES[name]
    spec, reference, summary, checkpointer = uninterrupted(raw)
    plain = ListSink()
    run_training(spec, plain)
    assert bits(plain.points) == bits(reference.points)  # checkpointing changes nothing
    last = summary.steps_done - 1
    rows = 80 if "data" in raw else 0
    batch = raw.get("batch_size")
    per_epoch = None if batch is None else (
        rows // batch if raw.get("drop_last") else math.ceil(rows / batch))
    assert sorted(checkpointer.saved) == list(range(last + 1))  # the final state too

    for step in resume_steps(last, per_epoch):
        sink, again = resumed(spec, checkpointer.load(step))
        assert min(s for s, _, _ in sink.points) == step + 1
        kept = [p for p in reference.points if p[0] <= step]
        assert bits(kept + sink.points) == bits(reference.points), f"resumed at {step}"
        assert comparable(again) == comparable(summary), f"resumed at {step}"
        assert again.resumed_from == step


def test_the_stop_rules_state_carries_over_a_resume() -> None:
    spec, _, summary, checkpointer = uninterrupted(
        CASES["plateau-on-val-loss-with-patience"])
    assert summary.outcome == "stopped"  # patience ran out before the last step
    last = summary.steps_done - 1
    sink, again = resumed(spec, checkpointer.load(last - 1))
    assert (again.outcome, again.stop_reason) == (summary.outcome, summary.stop_reason)
    assert max(s for s, _, _ in sink.points) == last


def test_a_run_resumed_from_its_final_state_only_concludes() -> None:
    spec, _, summary, checkpointer = uninterrupted(CASES["plateau-on-val-loss-with-patience"])
    final = checkpointer.load(summary.steps_done - 1)
    assert final["ending"] == ["stopped", summary.stop_reason]
    sink, again = resumed(spec, final)
    assert sink.points == []
    assert comparable(again) == comparable(summary)


def test_checkpoints_come_every_so_many_steps_after_a_flush() -> None:
    spec = JobSpec.model_validate(CASES["adam-steplr"])
    flushed: list[int] = []

    class Sink(ListSink):
        def write(self, updates: Sequence[JobUpdate]) -> list[bool]:
            flushed.extend(summary.steps_done - 1 for _, _, summary in updates)
            return super().write(updates)

    checkpointer = MemoryCheckpointer(every=7)
    summary = run_training(spec, Sink(), flush_seconds=3600, checkpointer=checkpointer)
    assert sorted(checkpointer.saved) == [6, 13, 20, 27, 29]  # and the final state
    assert set(checkpointer.saved) <= set(flushed)  # each right after its points were stored
    assert summary.checkpoint_step == 29
    for step in checkpointer.saved:
        assert checkpointer.load(step)["stored_through"] == step


def test_a_checkpoint_is_never_taken_within_the_policys_minimum_seconds() -> None:
    spec = JobSpec.model_validate(CASES["adam-steplr"])
    checkpointer = MemoryCheckpointer()
    checkpointer.policy = CheckpointPolicy(every_steps=1, min_seconds=3600)
    run_training(spec, ListSink(), checkpointer=checkpointer)
    assert list(checkpointer.saved) == [29]  # only the final state


def test_a_state_of_another_spec_is_refused() -> None:
    _, _, _, checkpointer = uninterrupted(CASES["adam-steplr"])
    other = JobSpec.model_validate({**CASES["adam-steplr"], "seed": 1})
    with pytest.raises(ResumeError):
        run_training(other, ListSink(), resume=checkpointer.load(3))
    renamed = JobSpec.model_validate({**CASES["adam-steplr"], "name": "renamed",
                                      "checkpoint_every": 9})
    sink, _ = resumed(renamed, checkpointer.load(3))  # bookkeeping may change
    assert min(s for s, _, _ in sink.points) == 4


def test_a_damaged_state_is_refused_not_crashed_on() -> None:
    spec, _, _, checkpointer = uninterrupted(CASES["adam-steplr"])
    state = checkpointer.load(3)
    del state["optimizer"]
    with pytest.raises(ResumeError):
        run_training(spec, ListSink(), resume=state)


def test_init_model_starts_from_the_given_parameters() -> None:
    spec, _, _, checkpointer = uninterrupted(CASES["adam-steplr"])
    model = checkpointer.load(10)["model"]
    sink = ListSink()
    run_training(spec, sink, init_model=model)
    reference = ListSink()
    run_training(spec, reference)
    assert sink.series("param_norm")[0] != reference.series("param_norm")[0]
    other = JobSpec.model_validate({**CASES["adam-steplr"],
                                    "model": {"kind": "mlp", "hidden": [5]}})
    with pytest.raises(SpecError) as refused:
        run_training(other, ListSink(), init_model=model)
    assert refused.value.loc == ("init_from",)
