"""The engine reproduces, digit for digit, the table the seed's original script printed."""

from __future__ import annotations

import copy

import pytest

from optimlab.worker.engine import ListSink, TrainingSummary, run_training
from optimlab.worker.spec import JobSpec
from tests import seed_table


def run_seed(**changes: object) -> tuple[ListSink, TrainingSummary]:
    raw = copy.deepcopy(seed_table.SEED_SPEC)
    raw.update(device="cpu", **changes)
    sink = ListSink()
    summary = run_training(JobSpec.model_validate(raw), sink)
    return sink, summary


def test_table_file_has_the_twenty_printed_lines() -> None:
    rows = seed_table.read_seed_table()
    assert len(rows) == 20
    assert rows[0] == ("1.6000", "225.")
    assert rows[6] == ("3.9997", "6.9633e-05")
    assert rows[-1] == ("4.", "0.")


def test_engine_reproduces_the_seed_table() -> None:
    sink, summary = run_seed()
    assert summary.outcome == "completed"
    assert summary.steps_done == 20
    seed_table.assert_matches_seed_table(sink.series("param.x"), sink.series("loss"))
    assert sink.series("lr") == [0.01] * 20


@pytest.mark.parametrize(
    ("step", "what", "value"),
    [
        (0, "x", 1.60006),         # 1.6001 when printed
        (3, "loss", 17.41245),     # 17.4125
        (6, "loss", 6.9641e-05),   # 6.9641e-05
        (13, "x", 4.0000001),      # "4." means exactly 4
        (14, "loss", 1e-30),       # "0." means exactly 0
    ],
)
def test_table_check_rejects_a_history_off_by_one_printed_digit(step: int, what: str,
                                                                value: float) -> None:
    sink, _ = run_seed()
    param_x, loss = sink.series("param.x"), sink.series("loss")
    (param_x if what == "x" else loss)[step] = value
    with pytest.raises(AssertionError, match=f"step {step}: {what}"):
        seed_table.assert_matches_seed_table(param_x, loss)


def test_table_check_rejects_the_wrong_alignment() -> None:
    # The loss is the one before the update, the parameter the one after it:
    # pairing the parameter before the update instead must not pass.
    sink, _ = run_seed()
    param_before = [1.0, *sink.series("param.x")[:-1]]
    with pytest.raises(AssertionError):
        seed_table.assert_matches_seed_table(param_before, sink.series("loss"))


def test_table_check_rejects_a_shorter_history() -> None:
    sink, _ = run_seed(steps=19)
    with pytest.raises(AssertionError, match="19"):
        seed_table.assert_matches_seed_table(sink.series("param.x"), sink.series("loss"))


def test_a_different_learning_rate_does_not_reproduce_the_table() -> None:
    sink, _ = run_seed(optimizer={"name": "SGD", "lr": 0.0101})
    with pytest.raises(AssertionError):
        seed_table.assert_matches_seed_table(sink.series("param.x"), sink.series("loss"))
