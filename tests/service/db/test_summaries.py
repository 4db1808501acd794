"""Summary figures computed from a stored history."""

from __future__ import annotations

import math
import uuid

import pytest
from sqlalchemy import Connection, Engine

from optimlab.service.db import jobs, metrics
from optimlab.service.db.packing import Steps, Values
from optimlab.service.db.summaries import converged_at
from tests.seed_table import SEED_SPEC


def history(engine: Engine, losses: list[float]) -> uuid.UUID:
    with engine.begin() as conn:
        job = jobs.insert_job(conn, name="", spec=SEED_SPEC, queue="cpu")
        metrics.write_points(conn, job.id, [(i, "loss", v) for i, v in enumerate(losses)])
        metrics.write_points(conn, job.id, [(i, "lr", 5.0) for i in range(len(losses))])
    return job.id


def stored_loss(conn: Connection, job_id: uuid.UUID) -> tuple[Steps, Values]:
    return metrics.load(conn, job_id, ["loss"])["loss"]


@pytest.mark.parametrize(("losses", "tolerance", "expected"), [
    ([10.0, 5.0, 1.05, 1.0, 0.999, 1.0], 0.01, 3),   # within 1% of 1.0 from step 3 on
    ([10.0, 5.0, 1.05, 1.0, 0.999, 1.0], 0.1, 2),
    ([1.0, 1.0, 1.0], 0.01, 0),                       # never outside
    ([3.0, math.nan, 2.0, 1.0], 0.01, 3),             # a NaN on the way counts as outside
    ([4.0, 2.0, 0.0, 0.0], 0.01, 2),                  # exact zero: exactly zero from step 2
])
def test_converged_at(engine: Engine, losses: list[float], tolerance: float,
                      expected: int) -> None:
    job_id = history(engine, losses)
    with engine.connect() as conn:
        found = converged_at(stored_loss(conn, job_id), final=losses[-1], tolerance=tolerance)
    assert found == expected


def test_a_run_that_ends_non_finite_never_converged(engine: Engine) -> None:
    job_id = history(engine, [1.0, math.inf])
    with engine.connect() as conn:
        assert converged_at(stored_loss(conn, job_id), final=math.inf, tolerance=0.01) is None
        assert converged_at(stored_loss(conn, job_id), final=None, tolerance=0.01) is None
