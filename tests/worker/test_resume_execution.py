"""A new attempt of a job resumes from the dead attempt's checkpoint, against the real
databases: the stored history ends equal, bit for bit, to an uninterrupted run's, with one
value per (name, step); a damaged checkpoint means step 0, never a crash."""

from __future__ import annotations

import logging
import struct
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update

from optimlab.service.db import jobs, metrics
from optimlab.service.db.models import Job, MetricChunk, utcnow
from optimlab.service.jobs.callers import LOCAL
from optimlab.service.jobs.deletion import delete_job
from optimlab.service.settings import Settings
from optimlab.worker.checkpoints import CheckpointStore
from optimlab.worker.engine import run_training
from optimlab.worker.engine.sink import JobUpdate
from optimlab.worker.execution import execute
from optimlab.worker.job_rows import claim_jobs
from optimlab.worker.resumption import StoreCheckpointer, checkpoint_policy
from optimlab.worker.spec import JobSpec
from optimlab.worker.sql_sink import WALL_TIME, SqlJobsSink
from tests.conftest import Stack

SPEC: dict[str, Any] = {
    "model": {"kind": "mlp", "hidden": [16], "dropout": 0.2},
    "data": {"kind": "synthetic", "generator": "blobs", "samples": 90, "features": 4,
             "classes": 3},
    "optimizer": {"name": "SGD", "lr": 0.05, "momentum": 0.9},
    "schedule": {"name": "OneCycleLR", "max_lr": 0.2},
    "batch_size": 16, "steps": 30, "checkpoint_every": 5, "device": "cpu",
}
KILLED_AFTER = 12  # the dead attempt stored steps 0..12; its checkpoints: 4 and 9


class Killed(BaseException):
    """The process died: nothing after this runs."""


def fast(stack: Stack) -> Settings:
    return stack.settings.model_copy(update={"checkpoint_min_seconds": 0.0,
                                             "flush_seconds": 1e-6})


def insert(db: Engine, spec: dict[str, Any]) -> uuid.UUID:
    with db.begin() as conn:
        return jobs.insert_job(conn, name="t", spec=spec, queue="cpu").id


def job(db: Engine, job_id: uuid.UUID) -> Job:
    with db.connect() as conn:
        found = jobs.get_job(conn, job_id)
    assert found is not None
    return found


def history(db: Engine, job_id: uuid.UUID) -> dict[str, list[tuple[int, bytes]]]:
    """Every stored series but wall_time, its values as bytes."""
    with db.connect() as conn:
        names = [n for n in metrics.series_names(conn, job_id) if n != WALL_TIME]
        series = metrics.read_series(conn, job_id, names)
    return {s.name: [(step, struct.pack("<d", v)) for step, v in zip(s.steps, s.values,
                                                                      strict=True)]
            for s in series}


def die_after(db: Engine, settings: Settings, job_id: uuid.UUID, step: int) -> None:
    """Run attempt 1 as the worker does, and kill it once it has stored ``step``."""
    (claim,) = claim_jobs([str(job_id)], db=db, settings=settings, worker="doomed",
                          keep_points=True)

    class Dying(SqlJobsSink):
        def write(self, updates: Sequence[JobUpdate]) -> list[bool]:
            going_on = super().write(updates)
            if any(summary.steps_done - 1 >= step for _, _, summary in updates):
                raise Killed
            return going_on

    spec = JobSpec.model_validate(claim.spec)
    store = CheckpointStore(settings.checkpoints)
    checkpointer = StoreCheckpointer(store, str(job_id), checkpoint_policy(spec, settings),
                                     keep=settings.checkpoint_keep)
    with pytest.raises(Killed):
        run_training(spec, Dying(db, [claim], threaded=False),
                     flush_seconds=settings.flush_seconds, checkpointer=checkpointer)
    with db.begin() as conn:  # its heartbeat stops: the job is orphaned
        conn.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow().replace(
            year=2000)))


def reference(db: Engine, settings: Settings) -> dict[str, list[tuple[int, bytes]]]:
    job_id = insert(db, SPEC)
    execute([str(job_id)], db=db, settings=settings, worker="w")
    assert job(db, job_id).status == jobs.SUCCEEDED
    return history(db, job_id)


def test_a_new_attempt_resumes_from_the_checkpoint_and_replaces_what_came_after(
        db: Engine, stack: Stack) -> None:
    settings = fast(stack)
    expected = reference(db, settings)
    job_id = insert(db, SPEC)
    die_after(db, settings, job_id, KILLED_AFTER)
    assert history(db, job_id)["loss"][-1][0] == KILLED_AFTER
    store = CheckpointStore(settings.checkpoints)
    assert store.steps(str(job_id)) == [4, 9]

    execute([str(job_id)], db=db, settings=settings, worker="w")

    done = job(db, job_id)
    assert done.status == jobs.SUCCEEDED, done.error
    assert done.attempt == 2
    assert history(db, job_id) == expected  # one value per step, bit for bit
    assert done.summary is not None
    assert (done.summary["attempts"], done.summary["resumed_from"],
            done.summary["steps_recomputed"]) == (2, 9, KILLED_AFTER - 9)
    assert done.summary["checkpoint_step"] == SPEC["steps"] - 1  # the final state
    kept = store.steps(str(job_id))
    assert len(kept) == settings.checkpoint_keep
    assert kept[-1] == SPEC["steps"] - 1
    with db.connect() as conn:  # the wall_time points, one per batch, none doubled
        (wall,) = metrics.read_series(conn, job_id, [WALL_TIME])
    assert wall.steps == sorted(set(wall.steps))


def test_a_damaged_checkpoint_means_step_zero_with_a_log_line(
        db: Engine, stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    settings = fast(stack)
    expected = reference(db, settings)
    job_id = insert(db, SPEC)
    die_after(db, settings, job_id, KILLED_AFTER)
    store = CheckpointStore(settings.checkpoints)
    for step in store.steps(str(job_id)):
        store.fs.pipe_file(f"{store.root}/{job_id}/step-{step:012d}.pt", b"not a checkpoint")

    with caplog.at_level(logging.WARNING):
        execute([str(job_id)], db=db, settings=settings, worker="w")

    done = job(db, job_id)
    assert done.status == jobs.SUCCEEDED, done.error
    assert history(db, job_id) == expected
    assert done.summary is not None
    assert done.summary["resumed_from"] is None
    assert done.summary["steps_recomputed"] == KILLED_AFTER + 1
    assert "cannot be read" in caplog.text
    assert "starting from step 0" in caplog.text


def test_a_checkpoint_past_the_stored_history_is_not_resumed_from(
        db: Engine, stack: Stack) -> None:
    settings = fast(stack)
    expected = reference(db, settings)
    job_id = insert(db, SPEC)
    die_after(db, settings, job_id, KILLED_AFTER)
    with db.begin() as conn:  # the points of steps 7.. were lost (say)
        metrics.delete_after(conn, job_id, 6)

    execute([str(job_id)], db=db, settings=settings, worker="w")

    done = job(db, job_id)
    assert history(db, job_id) == expected
    assert done.summary is not None
    assert done.summary["resumed_from"] == 4


def test_a_run_that_fails_before_storing_anything_still_replaces_the_points_after_its_checkpoint(
        db: Engine, stack: Stack) -> None:
    settings = fast(stack)
    job_id = insert(db, SPEC)
    die_after(db, settings, job_id, KILLED_AFTER)
    with db.begin() as conn:  # the data set is gone now: the run fails at once
        spec = {**SPEC, "data": {"kind": "upload", "dataset_id": "0" * 64}}
        conn.execute(update(Job).where(Job.id == job_id).values(spec=spec))

    execute([str(job_id)], db=db, settings=settings, worker="w")

    assert job(db, job_id).status == jobs.FAILED
    assert [step for step, _ in history(db, job_id)["loss"]] == list(range(10))


def test_deleting_a_job_deletes_its_checkpoints(db: Engine, stack: Stack) -> None:
    settings = fast(stack)
    job_id = insert(db, SPEC)
    execute([str(job_id)], db=db, settings=settings, worker="w")
    store = CheckpointStore(settings.checkpoints)
    assert store.steps(str(job_id))

    delete_job(db=db, caller=LOCAL, job_id=job_id, settings=settings)

    assert store.steps(str(job_id)) == []
    with db.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(MetricChunk)
                           .where(MetricChunk.job_id == job_id)) == 0


def test_a_checkpoint_store_that_fails_costs_the_checkpoints_not_the_job(
        db: Engine, stack: Stack, tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the store's folder should be")
    settings = fast(stack).model_copy(update={"checkpoint_url": str(blocked)})
    expected = reference(db, fast(stack))
    job_id = insert(db, SPEC)

    with caplog.at_level(logging.WARNING):
        execute([str(job_id)], db=db, settings=settings, worker="w")

    done = job(db, job_id)
    assert done.status == jobs.SUCCEEDED, done.error
    assert history(db, job_id) == expected
    assert "not saved" in caplog.text
