"""The training summary as a dict: what dataclasses.asdict gives, copied."""

from __future__ import annotations

import dataclasses

from optimlab.worker.engine.sink import TrainingSummary
from optimlab.worker.outcomes import Outcome


def _summary() -> TrainingSummary:
    summary = TrainingSummary(device="cpu", parameter_count=3, steps=10, steps_done=4,
                              initial_loss=2.0, final_loss=float("nan"), best_loss=0.5,
                              evaluation={"val_loss": 0.25})
    summary.steps_to = [{"threshold": 0.2, "step": 3}, {"threshold": 0.02, "step": None}]
    summary.conclude(Outcome.DIVERGED, "loss is nan", 4)
    return summary


def test_as_dict_is_asdict() -> None:
    summary = _summary()
    assert repr(summary.as_dict()) == repr(dataclasses.asdict(summary))
    assert list(summary.as_dict()) == [f.name for f in dataclasses.fields(summary)]


def test_as_dict_copies_what_the_run_goes_on_changing() -> None:
    summary = _summary()
    stored = summary.as_dict()
    assert summary.evaluation is not None
    summary.evaluation["val_loss"] = 9.0
    summary.steps_to[0]["step"] = 7
    summary.steps_to.append({"threshold": 0.0, "step": None})
    assert stored["evaluation"] == {"val_loss": 0.25}
    assert stored["steps_to"] == [{"threshold": 0.2, "step": 3},
                                  {"threshold": 0.02, "step": None}]
