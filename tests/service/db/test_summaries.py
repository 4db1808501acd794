"""Summary figures computed from a stored history."""

from __future__ import annotations

import math
import uuid

import pytest
from sqlalchemy import Connection, Engine

from optimlab.service.db import jobs, metrics
from optimlab.service.db.packing import Steps, Values
from optimlab.service.db.summaries import converged_at, default_window
from tests.seed_table import SEED_SPEC


def history(db: Engine, losses: list[float]) -> uuid.UUID:
    with db.begin() as conn:
        job = jobs.insert_job(conn, name="", spec=SEED_SPEC, queue="cpu")
        metrics.write_points(conn, job.id, [(i, "loss", v) for i, v in enumerate(losses)])
        metrics.write_points(conn, job.id, [(i, "lr", 5.0) for i in range(len(losses))])
    return job.id


def stored_loss(conn: Connection, job_id: uuid.UUID) -> tuple[Steps, Values]:
    return metrics.load(conn, job_id, ["loss"])["loss"]


def found(db: Engine, losses: list[float], *, tolerance: float = 0.01,
          window: int | None = None) -> int | None:
    job_id = history(db, losses)
    with db.connect() as conn:
        return converged_at(stored_loss(conn, job_id), final=losses[-1], tolerance=tolerance,
                            window=window)


@pytest.mark.parametrize(("losses", "tolerance", "window", "expected"), [
    ([10.0, 5.0, 1.05, 1.0, 0.999, 1.0], 0.01, 3, 3),   # within 1% of 1.0 from step 3 on
    ([10.0, 5.0, 1.05, 1.0, 0.999, 1.0], 0.01, 4, None),  # ... but only for 3 steps
    ([10.0, 5.0, 1.05, 1.0, 0.999, 1.0], 0.1, 4, 2),
    ([1.0, 1.0, 1.0], 0.01, 3, 0),                       # never outside
    ([1.0, 1.0, 1.0], 0.01, 4, None),                    # a run shorter than the window
    ([3.0, math.nan, 2.0, 1.0, 1.0], 0.01, 2, 3),        # a NaN on the way counts as outside
    ([3.0, 2.0, 1.0, 1.0, math.nan], 0.01, 2, None),     # so does a NaN at the end
    ([4.0, 2.0, 0.0, 0.0], 0.01, 2, 2),                  # exact zero: exactly zero from step 2
    ([4.0, 2.0, 1e-300, 0.0, 0.0], 0.01, 2, 3),          # ... and only exact zeros are inside
    ([math.inf, 2.0, 1.0, 1.0], 0.01, 2, 2),             # an infinity early on is outside
])
def test_converged_at(db: Engine, losses: list[float], tolerance: float,
                      window: int, expected: int | None) -> None:
    assert found(db, losses, tolerance=tolerance, window=window) == expected


def test_a_loss_still_falling_at_the_end_has_not_converged(db: Engine) -> None:
    # 10 % lower each step: the last loss is 10 % below the one before, never within 1 %
    falling = [100.0 * 0.9**k for k in range(20)]
    assert found(db, falling) is None
    assert found(db, falling, window=2) is None
    # within 50 %: 0.9**k <= 1.5 * 0.9**19 from step 16 on, four steps, a 20-step run needs 5
    assert found(db, falling, tolerance=0.5) is None
    assert found(db, falling, tolerance=0.5, window=4) == 16


def test_a_slow_decline_is_still_moving(db: Engine) -> None:
    # 0.1 % a step for 1,000 steps: within 1 % of the final value for its last 10 steps
    # only, where the default window asks for 100
    slow = [0.999**k for k in range(1000)]
    assert found(db, slow) is None
    assert found(db, slow, window=10) == 990


@pytest.mark.parametrize(("steps_done", "window"), [
    (1, 2), (4, 2), (5, 2), (9, 3), (20, 5), (39, 10), (40, 10), (100, 10), (101, 11),
    (1000, 100), (1_000_000, 100_000)])
def test_the_default_window(steps_done: int, window: int) -> None:
    # a tenth of the run, at least 10 steps; under 40 steps a quarter, at least 2
    assert default_window(steps_done) == window


def test_the_default_window_applies_to_the_stored_history(db: Engine) -> None:
    assert found(db, [5.0] * 40 + [1.0] * 10) == 40      # 50 steps: window 10
    assert found(db, [5.0] * 41 + [1.0] * 9) is None
    assert found(db, [5.0] * 170 + [1.0] * 30) == 170    # 200 steps: window 20
    assert found(db, [5.0] * 181 + [1.0] * 19) is None


def test_short_runs(db: Engine) -> None:
    assert found(db, [1.0]) is None              # one step: too short to tell
    assert found(db, [2.0, 1.0]) is None         # one settled step of two
    assert found(db, [1.0, 1.0]) == 0
    assert found(db, [3.0, 2.0, 1.0, 1.0]) == 2  # a run of four needs two
    assert found(db, [4.0, 3.0, 2.0, 1.0]) is None


def test_the_seed_example_converged_at_step_14(db: Engine) -> None:
    # the seed's loss is exactly 0 from step 14 of 20 (tests/data/seed_table.txt): six
    # settled steps, where a 20-step run needs five
    seed = [225.0, 180.6, 98.96, 17.41, 0.011, 9e-4, 7e-5, 5.5e-6, 4.3e-7, 3.4e-8, 2.6e-9,
            2.1e-10, 1.6e-11, 3.6e-12] + [0.0] * 6
    assert found(db, seed) == 14
    assert found(db, seed, window=6) == 14
    assert found(db, seed, window=7) is None


def test_a_run_that_ends_non_finite_never_converged(db: Engine) -> None:
    job_id = history(db, [1.0, 1.0, 1.0, math.inf])
    with db.connect() as conn:
        loss = stored_loss(conn, job_id)
        assert converged_at(loss, final=math.inf, tolerance=0.01, window=2) is None
        assert converged_at(loss, final=math.nan, tolerance=0.01, window=2) is None
        assert converged_at(loss, final=None, tolerance=0.01) is None


def test_an_empty_history_never_converged(db: Engine) -> None:
    with db.connect() as conn:
        empty = stored_loss(conn, uuid.uuid4())
        assert converged_at(empty, final=1.0, tolerance=0.01, window=2) is None
