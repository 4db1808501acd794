"""Deleting a job's points past a step (a resumed run replaces what the dead run stored
after its checkpoint), on SQLite and PostgreSQL: chunks cut exactly, nothing else touched."""

from __future__ import annotations

import math
import uuid

import pytest
from sqlalchemy import Engine, func, select

from optimlab.service.db import jobs, metrics
from optimlab.service.db.models import MetricChunk
from tests.seed_table import SEED_SPEC

# Batches as a run stores them: consecutive steps, and sparse ones (an evaluation series).
BATCHES = [
    {"loss": list(range(10)), "val_loss": [4, 9]},
    {"loss": list(range(10, 25)), "val_loss": [14, 19, 24]},
    {"loss": list(range(25, 30)), "val_loss": [29]},
]


def value(name: str, step: int) -> float:
    return -0.0 if step == 12 else math.nan if step == 27 else step / 7 + len(name)


def store(db: Engine) -> uuid.UUID:
    with db.begin() as conn:
        job_id = jobs.insert_job(conn, name="", spec=SEED_SPEC, queue="cpu").id
        for batch in BATCHES:
            metrics.write_columns(conn, job_id, {
                name: (steps, [value(name, s) for s in steps]) for name, steps in batch.items()})
    return job_id


def stored(db: Engine, job_id: uuid.UUID) -> dict[str, list[tuple[int, float]]]:
    with db.connect() as conn:
        series = metrics.read_series(conn, job_id, ["loss", "val_loss"])
    return {s.name: list(zip(s.steps, s.values, strict=True)) for s in series}


def expected(after: int) -> dict[str, list[tuple[int, float]]]:
    return {name: [(s, value(name, s)) for batch in BATCHES for s in batch[name] if s <= after]
            for name in ("loss", "val_loss")}


def same(a: dict[str, list[tuple[int, float]]], b: dict[str, list[tuple[int, float]]]) -> bool:
    def key(series: list[tuple[int, float]]) -> list[tuple[int, str]]:
        return [(s, math.copysign(1, v).hex() + v.hex()) for s, v in series]

    return a.keys() == b.keys() and all(key(a[n]) == key(b[n]) for n in a)


@pytest.mark.parametrize("after", [-1, 0, 4, 9, 12, 16, 24, 27, 29, 100])
def test_points_past_a_step_are_deleted_and_the_rest_kept_bit_for_bit(
        db: Engine, after: int) -> None:
    job_id, other = store(db), store(db)

    with db.begin() as conn:
        metrics.delete_after(conn, job_id, after)

    assert same(stored(db, job_id), expected(after))
    assert same(stored(db, other), expected(100))  # another job's points untouched
    with db.connect() as conn:
        assert metrics.last_step(conn, job_id, "loss") == (None if after < 0 else min(after, 29))
        counts = conn.execute(select(MetricChunk.name, func.sum(MetricChunk.count))
                              .where(MetricChunk.job_id == job_id)
                              .group_by(MetricChunk.name)).all()
    assert dict(counts) == {n: len(p) for n, p in expected(after).items() if p}


def test_new_points_after_the_cut_read_back_as_one_history(db: Engine) -> None:
    job_id = store(db)
    with db.begin() as conn:
        metrics.delete_after(conn, job_id, 16)
        metrics.write_columns(conn, job_id, {
            "loss": (range(17, 30), [value("loss", s) for s in range(17, 30)]),
            "val_loss": ([19, 24, 29], [value("val_loss", s) for s in (19, 24, 29)])})
    assert same(stored(db, job_id), expected(100))
