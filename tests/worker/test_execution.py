"""The task body, called directly against the real databases: claims, fencing, cancel, outcomes."""

from __future__ import annotations

import math
import struct
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update

from optimlab.service.db import jobs, metrics
from optimlab.service.db.models import Job, MetricChunk, utcnow
from optimlab.service.jobs.callers import LOCAL
from optimlab.service.jobs.cancel import cancel_job
from optimlab.worker.execution import execute
from optimlab.worker.job_rows import claim_jobs, finish_all
from optimlab.worker.recovery import requeue_orphans
from optimlab.worker.sql_sink import WALL_TIME
from tests.conftest import Stack
from tests.seed_table import SEED_SPEC, assert_matches_seed_table
from tests.stacks import wait_for

LONG_SPEC: dict[str, Any] = {**SEED_SPEC, "steps": 50_000_000}
# Each step of the seed job records loss, lr, grad_norm, update_norm, param_norm, param.x.
SEED_SERIES = ("loss", "lr", "grad_norm", "update_norm", "param_norm", "param.x")
SEED_POINTS = len(SEED_SERIES) * SEED_SPEC["steps"]


def insert(db: Engine, spec: dict[str, Any], *, status: str = jobs.QUEUED,
           attempt: int = 0, heartbeat_ago: float | None = None) -> uuid.UUID:
    with db.begin() as conn:
        job = jobs.insert_job(conn, name="t", spec=spec, queue="cpu")
        heartbeat = None if heartbeat_ago is None else utcnow() - timedelta(seconds=heartbeat_ago)
        conn.execute(update(Job).where(Job.id == job.id).values(
            status=status, attempt=attempt, heartbeat_at=heartbeat))
    return job.id


def run(db: Engine, stack: Stack, job_id: uuid.UUID) -> None:
    execute([str(job_id)], db=db, settings=stack.settings, worker="test-worker")


def job(db: Engine, job_id: uuid.UUID) -> Job:
    with db.connect() as conn:
        found = jobs.get_job(conn, job_id)
    assert found is not None
    return found


def series(db: Engine, job_id: uuid.UUID, name: str) -> list[float]:
    with db.connect() as conn:
        (found,) = metrics.read_series(conn, job_id, [name])
    return found.values


def point_count(db: Engine, job_id: uuid.UUID) -> int:
    """The engine's points stored for the job (the worker's wall_time aside)."""
    with db.connect() as conn:
        stored = conn.scalar(select(func.sum(MetricChunk.count))
                             .where(MetricChunk.job_id == job_id, MetricChunk.name != WALL_TIME))
    return int(stored or 0)


def test_seed_job_runs_to_the_table(db: Engine, stack: Stack) -> None:
    job_id = insert(db, SEED_SPEC)

    run(db, stack, job_id)

    done = job(db, job_id)
    assert done.status == jobs.SUCCEEDED
    assert done.attempt == 1
    assert done.started_at is not None
    assert done.finished_at is not None
    assert_matches_seed_table(series(db, job_id, "param.x"), series(db, job_id, "loss"))
    assert series(db, job_id, "lr") == [0.01] * 20
    with db.connect() as conn:
        names = set(metrics.series_names(conn, job_id))
    assert names == {*SEED_SERIES, WALL_TIME}
    summary = done.summary
    assert summary is not None
    assert summary["steps_done"] == 20
    assert summary["final_loss"] == 0.0
    assert summary["best_loss"] == 0.0
    assert summary["initial_loss"] == 225.0
    assert summary["device"] == "cpu"
    assert summary["outcome"] == "completed"
    assert summary["wall_seconds"] > 0
    # the loss is exactly 0 from step 14 on, six steps where a 20-step run needs five
    # (tests/service/db/test_summaries.py): it converged there, and crossed 22.5, 2.25
    # and 0.225 (the initial 225 over 10, 100 and 1000) at steps 3, 4 and 4
    assert summary["converged_at"] == 14
    assert (summary["steps_to_10x"], summary["steps_to_100x"], summary["steps_to_1000x"]) \
        == (3, 4, 4)


def test_a_redelivered_task_does_not_run_again_or_duplicate_rows(db: Engine,
                                                                 stack: Stack) -> None:
    job_id = insert(db, SEED_SPEC)
    run(db, stack, job_id)
    finished = job(db, job_id)

    run(db, stack, job_id)

    assert job(db, job_id).attempt == 1
    assert job(db, job_id).finished_at == finished.finished_at
    assert point_count(db, job_id) == SEED_POINTS


def test_a_duplicate_delivery_while_the_job_runs_elsewhere_exits_at_once(db: Engine,
                                                                         stack: Stack) -> None:
    job_id = insert(db, SEED_SPEC, status=jobs.RUNNING, attempt=1, heartbeat_ago=0.0)

    run(db, stack, job_id)

    assert job(db, job_id).status == jobs.RUNNING
    assert job(db, job_id).attempt == 1
    assert point_count(db, job_id) == 0


def test_a_job_whose_worker_died_is_taken_over_from_step_zero(db: Engine,
                                                              stack: Stack) -> None:
    job_id = insert(db, SEED_SPEC, status=jobs.RUNNING, attempt=1, heartbeat_ago=3600)
    with db.begin() as conn:  # what the dead run had stored
        metrics.write_points(conn, job_id, [(s, "loss", -1.0) for s in range(5)])

    run(db, stack, job_id)

    assert job(db, job_id).status == jobs.SUCCEEDED
    assert job(db, job_id).attempt == 2
    assert point_count(db, job_id) == SEED_POINTS
    assert_matches_seed_table(series(db, job_id, "param.x"), series(db, job_id, "loss"))


def test_a_job_that_keeps_losing_its_worker_fails(db: Engine, stack: Stack) -> None:
    attempts = stack.settings.max_attempts
    job_id = insert(db, SEED_SPEC, status=jobs.RUNNING, attempt=attempts, heartbeat_ago=3600)

    run(db, stack, job_id)

    failed = job(db, job_id)
    assert failed.status == jobs.FAILED
    assert failed.error is not None
    assert "gave up" in failed.error


def test_claiming_many_takes_exactly_the_free_jobs_in_order(db: Engine,
                                                             stack: Stack) -> None:
    attempts = stack.settings.max_attempts
    queued = insert(db, SEED_SPEC)
    stale = insert(db, SEED_SPEC, status=jobs.RUNNING, attempt=1, heartbeat_ago=3600)
    busy = insert(db, SEED_SPEC, status=jobs.RUNNING, attempt=1, heartbeat_ago=0.0)
    done = insert(db, SEED_SPEC, status=jobs.SUCCEEDED, attempt=1)
    exhausted = insert(db, SEED_SPEC, status=jobs.QUEUED, attempt=attempts)
    handed_back = insert(db, SEED_SPEC, status=jobs.QUEUED, attempt=1)
    with db.begin() as conn:  # what its earlier run had stored
        metrics.write_points(conn, handed_back, [(s, "loss", -1.0) for s in range(5)])
    order = [handed_back, busy, stale, exhausted, done, queued]

    claims = claim_jobs([str(j) for j in order], db=db, settings=stack.settings,
                        worker="w")

    assert [c.job_id for c in claims] == [handed_back, stale, queued]
    assert [c.attempt for c in claims] == [2, 2, 1]
    assert all(job(db, c.job_id).status == jobs.RUNNING for c in claims)
    assert all(job(db, c.job_id).worker == "w" for c in claims)
    assert point_count(db, handed_back) == 0
    assert job(db, busy).attempt == 1
    assert job(db, done).status == jobs.SUCCEEDED
    assert job(db, exhausted).status == jobs.FAILED


def test_the_spec_sets_the_convergence_window(db: Engine, stack: Stack) -> None:
    job_id = insert(db, {**SEED_SPEC, "summary": {"converge_window": 7}})

    run(db, stack, job_id)

    summary = job(db, job_id).summary
    assert summary is not None
    assert summary["converged_at"] is None  # six settled steps are fewer than seven


def test_finishing_many_keeps_a_cancelled_job_cancelled(db: Engine, stack: Stack) -> None:
    ids = [insert(db, {**SEED_SPEC, "summary": {"converge_window": 3}}) for _ in range(3)]
    claims = claim_jobs([str(j) for j in ids], db=db, settings=stack.settings,
                        worker="w")
    with db.begin() as conn:
        for claim in claims:  # losses 4, 3, 1, 1, 1: settled from step 2
            metrics.write_points(conn, claim.job_id, [(s, "loss", v) for s, v in
                                                      enumerate([4.0, 3.0, 1.0, 1.0, 1.0])])
        jobs.cancel_job(conn, ids[1])

    finish_all(db, [(c, jobs.SUCCEEDED, {"final_loss": 1.0, "n": k}, None)
                    for k, c in enumerate(claims[:2])]
               + [(claims[2], jobs.FAILED, {"final_loss": None}, "boom")])

    first, cancelled, failed = (job(db, j) for j in ids)
    assert (first.status, first.summary) == (jobs.SUCCEEDED, {"final_loss": 1.0, "n": 0,
                                                              "converged_at": 2})
    assert first.finished_at is not None
    assert first.heartbeat_at is None
    assert cancelled.status == jobs.CANCELLED
    assert cancelled.summary == {"final_loss": 1.0, "n": 1, "converged_at": 2}
    assert (failed.status, failed.error) == (jobs.FAILED, "boom")
    assert failed.summary is not None
    assert failed.summary["converged_at"] is None


def test_a_cancelled_queued_job_never_runs(db: Engine, stack: Stack) -> None:
    job_id = insert(db, SEED_SPEC)
    cancel_job(db=db, caller=LOCAL, job_id=job_id)

    run(db, stack, job_id)

    assert job(db, job_id).status == jobs.CANCELLED
    assert job(db, job_id).attempt == 0
    assert point_count(db, job_id) == 0


def start(db: Engine, stack: Stack, job_id: uuid.UUID) -> threading.Thread:
    thread = threading.Thread(target=run, args=(db, stack, job_id), daemon=True)
    thread.start()
    wait_for(lambda: point_count(db, job_id) > 0, timeout=30, what="first metrics")
    return thread


def test_cancelling_a_running_job_stops_it_within_a_second_keeping_its_metrics(
        db: Engine, stack: Stack) -> None:
    job_id = insert(db, LONG_SPEC)
    thread = start(db, stack, job_id)

    cancelled_at = time.monotonic()
    cancel_job(db=db, caller=LOCAL, job_id=job_id)
    thread.join(timeout=5)
    stopped_after = time.monotonic() - cancelled_at

    assert not thread.is_alive()
    assert stopped_after < 1.5
    stopped = job(db, job_id)
    assert stopped.status == jobs.CANCELLED
    assert stopped.summary is not None
    assert stopped.summary["outcome"] == "cancelled"
    losses = series(db, job_id, "loss")
    assert len(losses) == stopped.summary["steps_done"] > 0
    assert losses[0] == 225.0


def test_a_run_that_lost_its_job_to_another_attempt_stops_without_finishing_it(
        db: Engine, stack: Stack) -> None:
    job_id = insert(db, LONG_SPEC)
    thread = start(db, stack, job_id)

    with db.begin() as conn:  # another worker took the job over
        conn.execute(update(Job).where(Job.id == job_id).values(attempt=Job.attempt + 1))
    thread.join(timeout=5)

    assert not thread.is_alive()
    taken = job(db, job_id)
    assert taken.status == jobs.RUNNING
    assert taken.finished_at is None


def test_a_job_handed_back_to_the_queue_stops_and_stays_queued(db: Engine,
                                                               stack: Stack) -> None:
    job_id = insert(db, LONG_SPEC)
    thread = start(db, stack, job_id)

    with db.begin() as conn:
        assert jobs.requeue_job(conn, job(db, job_id))
    thread.join(timeout=5)

    assert not thread.is_alive()
    assert job(db, job_id).status == jobs.QUEUED
    assert job(db, job_id).summary is None


def test_a_diverging_run_is_a_result(db: Engine, stack: Stack) -> None:
    spec = {**SEED_SPEC, "optimizer": {"name": "SGD", "lr": 10.0}}
    job_id = insert(db, spec)

    run(db, stack, job_id)

    done = job(db, job_id)
    assert done.status == jobs.SUCCEEDED
    assert done.summary is not None
    assert done.summary["outcome"] == "diverged"
    step = done.summary["diverged_at"]
    losses = series(db, job_id, "loss")
    assert len(losses) == step + 1
    assert not math.isfinite(losses[-1])
    assert all(math.isfinite(v) for v in losses[:-1])


def test_a_stored_spec_the_engine_refuses_fails_the_job_not_the_worker(db: Engine,
                                                                      stack: Stack) -> None:
    job_id = insert(db, {**SEED_SPEC, "optimizer": {"name": "NoSuchOptimizer"}})

    run(db, stack, job_id)

    failed = job(db, job_id)
    assert failed.status == jobs.FAILED
    assert failed.error is not None
    assert "NoSuchOptimizer" in failed.error
    assert failed.finished_at is not None


def test_orphaned_running_jobs_are_requeued_once(db: Engine, stack: Stack) -> None:
    orphan = insert(db, SEED_SPEC, status=jobs.RUNNING, attempt=1, heartbeat_ago=3600)
    alive = insert(db, SEED_SPEC, status=jobs.RUNNING, attempt=1, heartbeat_ago=0)
    queued = insert(db, SEED_SPEC)
    sent: list[tuple[str, str]] = []

    class Recorder:
        def dispatch(self, job_id: str, queue: str) -> None:
            sent.append((job_id, queue))

        def dispatch_fused(self, job_ids: list[str], queue: str) -> None:
            raise AssertionError("recovery sends jobs one by one")

        def ping(self, timeout: float = 2.0) -> None:
            pass

    stale_after = timedelta(seconds=60)
    first = requeue_orphans(db, Recorder(), stale_after=stale_after)
    second = requeue_orphans(db, Recorder(), stale_after=stale_after)
    everything = requeue_orphans(db, Recorder(), stale_after=stale_after, include_queued=True)

    assert (first, second) == (1, 0)
    assert sent[0] == (str(orphan), "cpu")
    assert job(db, orphan).status == jobs.QUEUED
    assert job(db, alive).status == jobs.RUNNING
    assert everything == 2
    assert {job_id for job_id, _ in sent[1:]} == {str(orphan), str(queued)}


@pytest.mark.parametrize("value", [math.inf, -math.inf, 1e308, -0.0, 5e-324, math.nan])
def test_extreme_values_survive_the_store(db: Engine, stack: Stack, value: float) -> None:
    job_id = insert(db, SEED_SPEC)
    with db.begin() as conn:
        metrics.write_points(conn, job_id, [(0, "v", value)])
    with db.connect() as conn:
        (stored,) = metrics.read_series(conn, job_id, ["v"])

    # Packed float64 keeps every bit, on both databases (a REAL column of SQLite did not:
    # -0.0 came back as 0 and NaN as NULL).
    assert struct.pack("<d", stored.values[0]) == struct.pack("<d", value)
