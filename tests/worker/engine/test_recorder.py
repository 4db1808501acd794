"""Recorder.losses (a fused run's summary, a batch of steps at a time) against Recorder.loss
(a job alone's, step by step): the same summary, float for float."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from optimlab.worker.engine.recorder import Recorder
from optimlab.worker.engine.sink import ListSink, TrainingSummary


def _recorder(thresholds: list[float] | None) -> Recorder:
    summary = TrainingSummary(device="cpu", parameter_count=1)
    return Recorder(ListSink(), summary, flush_seconds=1.0, clock=lambda: 0.0,
                    thresholds=thresholds)


def _losses(seed: int, steps: int) -> list[float]:
    """A noisy descent over four decades with a plateau at its best, then 0.0, -0.0 and
    a negative loss (an expression model's)."""
    rng = random.Random(seed)
    values: list[float] = []
    value = rng.uniform(10.0, 100.0)
    for _ in range(steps):
        value *= rng.uniform(0.88, 1.04)
        values.append(min(values[-3:]) if values and rng.random() < 0.1 else value)
    values[50:56] = [min(values[:50])] * 6  # the best so far again: the first one stays
    values[-20], values[-15], values[-10] = 0.0, -0.0, -value
    return values


CASES = {
    "descent": [],
    "nan in the middle": [(37, math.nan)],
    "inf at the end": [(-1, math.inf)],
    "-inf at step 0": [(0, -math.inf)],
    "nan at step 0": [(0, math.nan)],
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("thresholds", [None, [50.0, 5.0, 0.5, 0.0, -1.0]])
@pytest.mark.parametrize("seed", range(4))
def test_losses_in_batches_sum_up_as_step_by_step(case: str, thresholds: list[float] | None,
                                                  seed: int) -> None:
    values = _losses(seed, 120)
    for at, value in CASES[case]:
        values[at] = value
    rng = random.Random(seed)
    cuts = sorted({0, 50, 53, len(values), *(rng.randrange(len(values)) for _ in range(6))})
    alone, fused = _recorder(thresholds), _recorder(thresholds)
    for first, end in itertools.pairwise(cuts):
        for step in range(first, end):
            alone.loss(step, values[step])
        fused.losses(first, values[first:end])
        # as each write would see it; repr: NaN equals NaN, 0.0 differs from -0.0
        assert repr(fused.summary.as_dict()) == repr(alone.summary.as_dict()), end
        assert (fused.pending, repr(fused.last_log)) == (alone.pending, repr(alone.last_log))
    assert fused.points == []  # a fused run keeps the points itself


def test_a_recorder_restored_from_its_state_summarises_on_as_the_original() -> None:
    losses = [4.0, 3.0, 0.5, 0.03, 0.2, 0.001, 0.002, 0.0005]
    whole = Recorder(ListSink(), TrainingSummary(device="cpu", parameter_count=1),
                     flush_seconds=60, clock=lambda: 0.0)
    for step, value in enumerate(losses):
        whole.loss(step, value)
    first = Recorder(ListSink(), TrainingSummary(device="cpu", parameter_count=1),
                     flush_seconds=60, clock=lambda: 0.0)
    for step, value in enumerate(losses[:4]):
        first.loss(step, value)
    first.flush()
    state = first.state_dict()
    resumed = Recorder(ListSink(), TrainingSummary(device="cpu", parameter_count=1),
                       flush_seconds=60, clock=lambda: 0.0)
    resumed.load_state_dict(state)
    for step, value in enumerate(losses[4:], 4):
        resumed.loss(step, value)
    assert resumed.summary.as_dict() == whole.summary.as_dict()
