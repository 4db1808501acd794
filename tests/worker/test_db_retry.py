"""The outbox and backoff of worker/db_retry.py, against a store of the test's own, and the
store's check for a commit whose acknowledgement was lost, against the real databases."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from optimlab.service.db import jobs
from optimlab.service.db.models import MetricChunk
from optimlab.worker.db_retry import Backoff, Outbox, retrying
from optimlab.worker.engine.sink import point_columns, point_count
from optimlab.worker.sql_sink import store_updates
from tests.seed_table import SEED_SPEC

QUICK = Backoff(first=0.001, cap=0.004)


def outage() -> OperationalError:
    return OperationalError("INSERT ...", {}, Exception("server closed the connection"))


class FlakyStore:
    """Stores batches in a list; fails the next ``down`` calls as a database away would."""

    def __init__(self) -> None:
        self.stored: list[int] = []
        self.down = 0
        self.retried: list[bool] = []

    def __call__(self, batch: int, retried: bool) -> str:
        self.retried.append(retried)
        if self.down:
            self.down -= 1
            raise outage()
        self.stored.append(batch)
        return "running"


def test_batches_wait_while_the_database_is_away_then_are_stored_once_in_order() -> None:
    store = FlakyStore()
    outbox = Outbox(store, size=lambda batch: 10, limit=100, backoff=Backoff(first=0.0, cap=0.0),
                    what="test")
    store.down = 3

    answers = [outbox.put(batch) for batch in range(5)]

    assert answers[:3] == [None, None, None]  # not stored yet: training goes on
    assert store.stored == [0, 1, 2, 3, 4]
    assert answers[3:] == ["running", "running"]
    # batch 0 tried at each put until the database is back, the others once each
    assert store.retried == [False, True, True, True, False, False, False, False]


def test_a_full_outbox_blocks_until_everything_is_stored() -> None:
    store = FlakyStore()
    outbox = Outbox(store, size=lambda batch: 10, limit=15, backoff=QUICK, what="test")
    store.down = 1_000_000  # as good as for ever, until the first blocking put
    assert outbox.put(0) is None
    store.down = 25

    assert outbox.put(1) == "running"  # 20 points waiting > 15: blocks through 25 failures

    assert store.stored == [0, 1]
    assert outbox.points == 0


def test_other_errors_are_raised_at_once() -> None:
    def broken(batch: int, retried: bool) -> str:
        raise IntegrityError("INSERT ...", {}, Exception("duplicate key"))

    outbox = Outbox(broken, size=lambda batch: 1, limit=10, backoff=QUICK, what="test")
    with pytest.raises(IntegrityError):
        outbox.put(0)


def test_retrying_waits_out_transient_failures_only() -> None:
    calls: list[int] = []

    def flaky() -> int:
        calls.append(1)
        if len(calls) < 4:
            raise outage()
        return len(calls)

    assert retrying(flaky, backoff=QUICK, what="test") == 4
    with pytest.raises(ValueError, match="invalid literal"):
        retrying(lambda: int("x"), backoff=QUICK, what="test")


def test_the_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(first=0.1, cap=1.0)
    assert [backoff.after(n) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_a_batch_retried_after_a_lost_acknowledgement_is_not_stored_twice(
        db: Engine) -> None:
    with db.begin() as conn:
        job = jobs.insert_job(conn, name="t", spec=SEED_SPEC, queue="cpu")
        (claim,) = jobs.claim_queued(conn, [job.id], worker="w", max_attempts=3)
    points = point_columns([(step, name, float(step)) for step in range(5)
                            for name in ("loss", "lr")])
    later = point_columns([(step, name, float(step)) for step in range(5, 8)
                           for name in ("loss", "lr")])
    with db.begin() as conn:  # committed, but suppose the worker never heard
        store_updates(conn, [claim], [(0, points, {"steps_done": 5})])

    with db.begin() as conn:  # the retry of that batch, then the next one
        assert store_updates(conn, [claim], [(0, points, {"steps_done": 5})],
                             verify=True) == [jobs.RUNNING]
        assert store_updates(conn, [claim], [(0, later, {"steps_done": 8})],
                             verify=True) == [jobs.RUNNING]

    assert stored_points(db, claim.job_id) == point_count(points) + point_count(later)


def stored_points(db: Engine, job_id: uuid.UUID) -> int:
    with db.connect() as conn:
        return int(conn.scalar(select(func.sum(MetricChunk.count))
                               .where(MetricChunk.job_id == job_id)) or 0)
