"""Deleting a job's points after a step (a resumed run stores them again): whole chunks past
it go, a chunk across it keeps its head, other jobs keep everything."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine

from optimlab.service.db import jobs, metrics
from tests.conftest import Stack
from tests.seed_table import SEED_SPEC


def _job(engine: Engine) -> uuid.UUID:
    with engine.begin() as conn:
        job_id = jobs.insert_job(conn, name="t", spec=SEED_SPEC, queue="cpu").id
        for first in (0, 10, 20):  # three batches: a chunk per series each
            metrics.write_columns(conn, job_id, {
                "loss": (range(first, first + 10), [float(s) for s in range(first, first + 10)]),
                "val_loss": ([first + 4, first + 9], [-1.0 * first, -2.0 * first])})
    return job_id


def _points(engine: Engine, job_id: uuid.UUID) -> dict[str, list[tuple[int, float]]]:
    with engine.connect() as conn:
        loaded = metrics.load(conn, job_id, ["loss", "val_loss"])
    return {name: list(zip(steps.tolist(), values.tolist(), strict=True))
            for name, (steps, values) in loaded.items()}


def test_points_after_a_step_are_deleted_and_the_rest_kept(engine: Engine, stack: Stack) -> None:
    job_id, other = _job(engine), _job(engine)
    before = _points(engine, job_id)
    with engine.begin() as conn:
        metrics.delete_after(conn, job_id, 13)
        assert metrics.last_steps(conn, [job_id, other]) == {job_id: 13, other: 29}

    after = _points(engine, job_id)
    assert after == {name: [(s, v) for s, v in points if s <= 13]
                     for name, points in before.items()}
    assert after["loss"] == [(s, float(s)) for s in range(14)]  # a chunk cut at 13
    assert after["val_loss"] == [(4, -0.0), (9, -0.0)]
    assert _points(engine, other) == before
    with engine.begin() as conn:  # a chunk that ends at the step is kept whole
        metrics.delete_after(conn, job_id, 9)
    assert _points(engine, job_id)["loss"] == [(s, float(s)) for s in range(10)]


def test_deleting_after_minus_one_deletes_everything(engine: Engine, stack: Stack) -> None:
    job_id = _job(engine)
    with engine.begin() as conn:
        metrics.delete_after(conn, job_id, -1)
        assert metrics.last_steps(conn, [job_id]) == {job_id: -1}
    assert _points(engine, job_id) == {"loss": [], "val_loss": []}
