"""A fused run stopped at a checkpoint and resumed from it gives every job the history of
the uninterrupted run, bit for bit: every fused optimizer, schedules, mini-batches and
full batches, evaluations, jobs that end before or after the checkpoint, and a resumed
run that holds only some of the jobs. (The engine records no timing series: the worker's
``wall_time`` and the summaries' wall_seconds and steps_per_second are left out.)"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest

from optimlab.worker.engine.checkpoint import RunState
from optimlab.worker.engine.fused.loop import run_fused
from optimlab.worker.engine.fused.probe import choose_mode
from optimlab.worker.engine.sink import MetricPoint, TrainingSummary
from optimlab.worker.spec import JobSpec
from tests.worker.engine.fused.fusing import LR_SCALE, PROBLEMS, CollectingSink, grid
from tests.worker.engine.memory_checkpointer import MemoryCheckpointer

TIMING = ("wall_seconds", "steps_per_second")


def fused(raw: list[dict[str, Any]], *, every: int | None = None, resume: RunState | None = None,
          origins: Sequence[int] | None = None
          ) -> tuple[CollectingSink, list[TrainingSummary], MemoryCheckpointer | None]:
    specs = [JobSpec.model_validate(r) for r in raw]
    mode = None
    if resume is None:
        mode, reason = choose_mode(specs)
        assert mode is not None, reason
    sink = CollectingSink(len(specs))
    checkpointer = None if every is None else MemoryCheckpointer(every)
    summaries = run_fused(specs, sink, flush_seconds=0.0, mode=mode, checkpointer=checkpointer,
                          resume=resume, origins=origins)
    return sink, summaries, checkpointer


def _stored(points: list[MetricPoint], step: int) -> list[MetricPoint]:
    """What a run had stored when it checkpointed after ``step``."""
    return [p for p in points if p[0] <= step]


def _same(a: list[MetricPoint], b: list[MetricPoint]) -> bool:
    def key(points: list[MetricPoint]) -> list[tuple[int, str, float | str]]:
        return sorted((s, n, "nan" if math.isnan(v) else v) for s, n, v in points)
    return key(a) == key(b)


def _summary(summary: TrainingSummary) -> dict[str, Any]:
    return {k: v for k, v in summary.as_dict().items() if k not in TIMING}


def assert_resumes_exactly(raw: list[dict[str, Any]], *, every: int, at: int = 3,
                           steps: Sequence[int] = ()) -> list[int]:
    """Checkpoint every ``every`` steps; resume from ``at`` of the checkpoints (spread over
    the run), or from those after ``steps``; each job's points (those stored before the
    checkpoint, then the resumed run's) and summary equal the uninterrupted run's. Return
    the steps resumed at."""
    reference, summaries, _ = fused(raw)
    checkpointed, checkpointed_summaries, checkpointer = fused(raw, every=every)
    assert checkpointer is not None
    assert checkpointer.saved
    for index in range(len(raw)):  # taking checkpoints changes nothing
        assert _same(checkpointed.points[index], reference.points[index]), index
        assert _summary(checkpointed_summaries[index]) == _summary(summaries[index])
    saved = sorted(checkpointer.saved)
    chosen = list(steps) or sorted(
        {saved[round(k * (len(saved) - 1) / max(1, at - 1))] for k in range(at)})
    for step in chosen:
        state = checkpointer.load(step)
        assert state["step"] == state["stored_step"] == step
        resumed, resumed_summaries, _ = fused(raw, resume=state)
        for index in range(len(raw)):
            joined = _stored(reference.points[index], step) + resumed.points[index]
            assert _same(joined, reference.points[index]), (step, index)
            assert _summary(resumed_summaries[index]) == _summary(summaries[index]), \
                (step, index)
    return chosen


# (optimizer with its fixed options, the second axis, its two values, two learning rates)
OPTIMIZERS: dict[str, tuple[dict[str, Any], str, list[Any], list[float]]] = {
    "SGD": ({"name": "SGD", "nesterov": True}, "momentum", [0.5, 0.9], [0.002, 0.01]),
    "Adam": ({"name": "Adam", "amsgrad": True}, "betas", [[0.9, 0.999], [0.8, 0.99]],
             [0.01, 0.05]),
    "AdamW": ({"name": "AdamW"}, "weight_decay", [0.0, 0.1], [0.01, 0.05]),
    "RMSprop": ({"name": "RMSprop", "momentum": 0.5}, "centered", [False, True],
                [0.001, 0.005]),
    "Adagrad": ({"name": "Adagrad"}, "lr_decay", [0.0, 0.01], [0.05, 0.2]),
    "Adamax": ({"name": "Adamax"}, "weight_decay", [0.0, 0.01], [0.01, 0.05]),
    "NAdam": ({"name": "NAdam"}, "momentum_decay", [0.004, 0.01], [0.01, 0.05]),
    "RAdam": ({"name": "RAdam"}, "weight_decay", [0.0, 0.01], [0.01, 0.05]),
    "Adadelta": ({"name": "Adadelta"}, "rho", [0.9, 0.95], [0.5, 1.0]),
    "ASGD": ({"name": "ASGD", "t0": 20.0}, "lambd", [1e-4, 1e-3], [0.005, 0.02]),
}


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_each_fused_optimizer_resumes_exactly_on_mini_batches(optimizer: str) -> None:
    options, axis, values, lrs = OPTIMIZERS[optimizer]
    raw = grid({**PROBLEMS["linreg"], "eval_every": 7}, options, axis, values, lrs)
    assert len(assert_resumes_exactly(raw, every=9)) == 3


@pytest.mark.parametrize("schedule", [
    {"name": "OneCycleLR", "max_lr": 0.02},  # cycles the momentum too
    {"name": "StepLR", "step_size": 10, "gamma": 0.5},
    {"name": "CosineAnnealingLR"},
])
def test_schedules_resume_exactly_on_an_mlp(schedule: dict[str, Any]) -> None:
    scale = LR_SCALE["mlp"]
    raw = grid(PROBLEMS["mlp"], {"name": "SGD", "momentum": 0.9}, "dampening", [0.0, 0.1],
               [0.002 * scale, 0.01 * scale], schedule=schedule)
    assert_resumes_exactly(raw, every=11)


def test_full_batch_expressions_resume_exactly() -> None:
    scale = LR_SCALE["rosenbrock"]
    raw = grid(PROBLEMS["rosenbrock"], {"name": "Adam"}, "betas", [[0.9, 0.999], [0.5, 0.9]],
               [0.01 * scale, 0.05 * scale])
    assert len(assert_resumes_exactly(raw, every=10, at=4)) == 4


def endings() -> list[dict[str, Any]]:
    """Jobs that end early: diverged at once, a target reached mid-run, patience."""
    base = {**PROBLEMS["linreg"], "steps": 90, "eval_every": 5}
    raw = grid(base, {"name": "SGD"}, "momentum", [0.0, 0.9], [0.003, 0.03])
    raw[2] = {**raw[2], "stop": {"loss_below": 0.1}}
    raw[6] = {**raw[6], "stop": {"patience": 2}}
    raw[3] = {**raw[3], "optimizer": {"name": "SGD", "lr": 5.0}, "diverge_factor": 2.0}
    return raw


def test_jobs_that_end_before_or_after_the_checkpoint_resume_exactly() -> None:
    raw = endings()
    _, summaries, _ = fused(raw)
    ends = {s.outcome: s.steps_done - 1 for s in summaries if s.outcome != "completed"}
    assert sorted(ends) == ["diverged", "reached_target", "stopped"], ends
    # the last step of each ending, and the steps either side of it
    around = sorted({max(0, end + d) for end in ends.values() for d in (-1, 0, 1)})
    assert assert_resumes_exactly(raw, every=1, steps=around) == around


def test_a_resumed_run_of_some_jobs_in_another_order_gives_them_their_history() -> None:
    raw = endings()
    reference, summaries, checkpointer = fused(raw, every=10)
    assert checkpointer is not None
    step = 39
    state = checkpointer.load(step)
    ended = next(i for i, s in enumerate(summaries) if s.steps_done <= step)
    kept = [7, ended, 2, 5]  # some jobs, in another order, one of them ended already
    resumed, resumed_summaries, again = fused([raw[i] for i in kept], resume=state,
                                              origins=kept, every=10)
    for k, index in enumerate(kept):
        joined = _stored(reference.points[index], step) + resumed.points[k]
        assert _same(joined, reference.points[index]), index
        assert _summary(resumed_summaries[k]) == _summary(summaries[index])
    assert resumed.points[kept.index(ended)] == []  # it had stored everything already

    # the resumed run checkpoints in the first run's terms: resuming it again still holds
    assert again is not None
    assert max(again.saved) > step
    later = max(again.saved)
    last, last_summaries, _ = fused([raw[7], raw[2]], resume=again.load(later),
                                    origins=[7, 2])
    for k, index in enumerate([7, 2]):
        joined = _stored(reference.points[index], later) + last.points[k]
        assert _same(joined, reference.points[index]), index
        assert _summary(last_summaries[k]) == _summary(summaries[index])


def test_a_checkpoint_is_refused_for_jobs_it_does_not_hold() -> None:
    raw = grid(PROBLEMS["seed"], {"name": "SGD"}, "momentum", [0.0, 0.9], [0.001, 0.01])
    _, _, checkpointer = fused(raw, every=50)
    assert checkpointer is not None
    with pytest.raises(ValueError, match=r"jobs \[12\] are not in the checkpoint"):
        fused(raw[:2], resume=checkpointer.load(min(checkpointer.saved)), origins=[0, 12])
    with pytest.raises(ValueError, match="-step run"):
        fused([{**r, "steps": 500} for r in raw],
              resume=checkpointer.load(min(checkpointer.saved)))
