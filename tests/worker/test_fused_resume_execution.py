"""A fused task that dies after checkpointing, run again against the real databases: the new
attempt resumes from the group's checkpoint, replaces what the dead one stored after it,
and every job's history is the uninterrupted fused run's, bit for bit (the worker's
wall_time aside); the orphans go back as one fused task, even when some jobs are gone."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, update

from optimlab.service.db import jobs, metrics
from optimlab.service.db.models import Job, utcnow
from optimlab.service.jobs.callers import LOCAL
from optimlab.service.jobs.cancel import cancel_job
from optimlab.service.jobs.sweep_spec import SweepSpec
from optimlab.service.jobs.sweeps import submit_sweep
from optimlab.service.settings import Settings
from optimlab.worker import fused_run
from optimlab.worker.checkpoints import CheckpointStore
from optimlab.worker.engine.fused.loop import run_fused
from optimlab.worker.execution import execute
from optimlab.worker.fused_checkpoints import FusedGroup, StoreCheckpointer, fused_group
from optimlab.worker.recovery import requeue_orphans
from optimlab.worker.resumption import StoreCheckpointer as JobCheckpointer
from optimlab.worker.spec import JobSpec
from optimlab.worker.sql_sink import WALL_TIME, SqlJobsSink
from tests.conftest import Stack
from tests.seed_table import SEED_SPEC
from tests.worker.engine.fused.fusing import CollectingSink
from tests.worker.engine.histories import engine_history

SWEEP: dict[str, Any] = {
    "name": "resumed", "base": {**SEED_SPEC, "steps": 240, "checkpoint_every": 30},
    "seeds": None, "axes": {"optimizer.lr": [0.001, 0.01], "optimizer.momentum": [0.0, 0.9]}}
# The same without a checkpoint before its end (the service's default: every hour here).
UNCHECKPOINTED: dict[str, Any] = {**SWEEP, "base": {**SEED_SPEC, "steps": 240}}


# The killed run's process lives in this test: its jobs name a holder on another host, so
# that their stale heartbeats alone tell they are lost (as for a worker that died there).
DEAD_HOST = "a-host-that-died"


class Killed(BaseException):
    """The process died: nothing of the task's own handling runs (no fallback, no finish)."""


class Messages:
    """A dispatcher that keeps what it was asked to send."""

    def __init__(self) -> None:
        self.fused: list[list[str]] = []
        self.alone: list[str] = []

    def dispatch(self, job_id: str, queue: str) -> None:
        self.alone.append(job_id)

    def dispatch_fused(self, job_ids: list[str], queue: str) -> None:
        self.fused.append(list(job_ids))

    def ping(self, timeout: float = 2.0) -> None:
        pass


def settings_of(stack: Stack) -> Settings:
    # a flush every step or so, checkpoints as often as the specs say, all of them kept
    return stack.settings.model_copy(update={"flush_seconds": 0.001, "checkpoint_seconds": 3600,
                                             "checkpoint_min_seconds": 0.0,
                                             "checkpoint_keep": 100})


def die_after_checkpoints(monkeypatch: pytest.MonkeyPatch, count: int, writes: int,
                          checkpointer: Any = StoreCheckpointer) -> None:
    """The run dies ``writes`` flushes after its ``count``-th checkpoint, once those are
    stored (a killed process's last transactions are committed or not at all);
    ``checkpointer``: the fused runs' class, or a job alone's (resumption.py)."""
    saved = 0
    after = 0
    save, write = checkpointer.save, SqlJobsSink.write

    def counting_save(self: Any, step: int, state: Any) -> None:
        nonlocal saved
        save(self, step, state)
        saved += 1

    def dying_write(self: SqlJobsSink, updates: Any) -> list[bool]:
        nonlocal after
        answer = write(self, updates)
        if saved >= count:
            after += 1
            if after > writes:
                self.drain()
                raise Killed
        return answer

    monkeypatch.setattr(checkpointer, "save", counting_save)
    monkeypatch.setattr(SqlJobsSink, "write", dying_write)


def submitted(db: Engine, settings: Settings, sweep: dict[str, Any]
              ) -> tuple[list[str], list[uuid.UUID]]:
    """The sweep's one fused task, as sent, and its jobs' ids."""
    sent = Messages()
    submit_sweep(db=db, dispatcher=sent, settings=settings, caller=LOCAL,
                 request=SweepSpec.model_validate(sweep))
    (task,) = sent.fused
    return task, [uuid.UUID(job_id) for job_id in task]


def killed(task: list[str], db: Engine, settings: Settings,
           monkeypatch: pytest.MonkeyPatch, *, count: int, writes: int) -> None:
    """Run the task until it dies (die_after_checkpoints), leaving its jobs running."""
    with monkeypatch.context() as patch:
        die_after_checkpoints(patch, count=count, writes=writes)
        with pytest.raises(Killed):
            execute(task, db=db, settings=settings, worker="first")


def killed_past_its_second_checkpoint(
        db: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[str], list[uuid.UUID], FusedGroup, CheckpointStore, int]:
    """SWEEP's fused task, dead five flushes after its second checkpoint: the task, its
    jobs, their group, the checkpoint store and the step of the group's newest checkpoint."""
    task, ids = submitted(db, settings, SWEEP)
    killed(task, db, settings, monkeypatch, count=2, writes=5)
    group = fused_group(db, task)
    store = CheckpointStore(settings.checkpoints)
    return task, ids, group, store, store.steps(group.key)[-1]


def orphaned(db: Engine, ids: list[uuid.UUID]) -> None:
    """The jobs' heartbeats stale, their holder on a host that died: they are lost."""
    with db.begin() as conn:
        conn.execute(update(Job).where(Job.id.in_(ids))
                     .values(heartbeat_at=utcnow() - timedelta(hours=1),
                             holder_host=DEAD_HOST))


def stored(db: Engine, job_id: uuid.UUID) -> dict[str, list[float]]:
    with db.connect() as conn:
        names = [n for n in metrics.series_names(conn, job_id) if n != WALL_TIME]
        loaded = metrics.load(conn, job_id, names)
    for name, (steps, _) in loaded.items():  # one value per step: no gap, no duplicate
        assert np.array_equal(steps, np.arange(steps.size)), name
    return {name: values.tolist() for name, (_, values) in loaded.items()}


def uninterrupted(specs: list[dict[str, Any]]) -> list[dict[str, list[float]]]:
    sink = CollectingSink(len(specs))
    run_fused([JobSpec.model_validate(spec) for spec in specs], sink)
    return [sink.history(index) for index in range(len(specs))]


def get(db: Engine, job_id: uuid.UUID) -> Job:
    with db.connect() as conn:
        found = jobs.get_job(conn, job_id)
    assert found is not None
    return found


def test_a_killed_fused_task_resumes_from_its_checkpoint_with_every_history_exact(
        db: Engine, stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_of(stack)
    task, ids, group, store, checkpoint = killed_past_its_second_checkpoint(db, settings,
                                                                           monkeypatch)
    with db.connect() as conn:
        left = metrics.last_steps(conn, ids)
    assert all(last > checkpoint for last in left.values())  # points past the checkpoint
    assert all(get(db, i).status == jobs.RUNNING for i in ids)

    # one job is cancelled meanwhile; the others' heartbeats go stale; the monitor sends
    # them back as one fused task, in the task's order
    cancel_job(db=db, caller=LOCAL, job_id=ids[1])
    orphaned(db, ids)
    again = Messages()
    assert requeue_orphans(db, again, stale_after=timedelta(seconds=60)) == 3
    assert again.alone == []
    assert again.fused == [[task[0], task[2], task[3]]]
    execute(again.fused[0], db=db, settings=settings, worker="second")

    specs = [get(db, i).spec for i in ids]
    expected = uninterrupted(specs)
    for index, job_id in enumerate(ids):
        done = get(db, job_id)
        if index == 1:
            assert done.status == jobs.CANCELLED
            continue
        assert done.status == jobs.SUCCEEDED, done.error
        assert done.attempt == 2
        assert done.summary is not None
        assert done.summary["resume"] == {
            "attempts": 2, "started_at_step": checkpoint + 1,
            "steps_recomputed": left[job_id] - checkpoint}
        assert done.summary["steps_done"] == SWEEP["base"]["steps"]
        assert stored(db, job_id) == expected[index]
    assert store.steps(group.key) == []  # every job of the group finished: nothing kept


def test_a_task_without_a_checkpoint_starts_again_from_step_zero(
        db: Engine, stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_of(stack)
    task, ids = submitted(db, settings, UNCHECKPOINTED)
    killed(task, db, settings, monkeypatch, count=0, writes=20)
    orphaned(db, ids)
    with db.connect() as conn:
        left = metrics.last_steps(conn, ids)
    execute(task, db=db, settings=settings, worker="second")

    expected = uninterrupted([get(db, i).spec for i in ids])
    for index, job_id in enumerate(ids):
        done = get(db, job_id)
        assert done.status == jobs.SUCCEEDED, done.error
        assert done.summary is not None
        assert done.summary["resume"] == {"attempts": 2, "started_at_step": 0,
                                          "steps_recomputed": left[job_id] + 1}
        assert stored(db, job_id) == expected[index]


def test_a_fused_tasks_job_sent_alone_resumes_from_its_groups_checkpoint(
        db: Engine, stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reconciler re-sends a lost message's jobs one by one: each still resumes from the
    group's checkpoint (the job rows, not the message, say it belongs to a fused task)."""
    settings = settings_of(stack)
    task, ids, group, store, checkpoint = killed_past_its_second_checkpoint(db, settings,
                                                                           monkeypatch)
    orphaned(db, ids)
    with db.connect() as conn:
        left = metrics.last_steps(conn, ids)

    for one in task:
        execute([one], db=db, settings=settings, worker="second")

    expected = uninterrupted([get(db, i).spec for i in ids])
    for index, job_id in enumerate(ids):
        done = get(db, job_id)
        assert done.status == jobs.SUCCEEDED, done.error
        assert done.summary is not None
        assert done.summary["resume"] == {
            "attempts": 2, "started_at_step": checkpoint + 1,
            "steps_recomputed": left[job_id] - checkpoint}
        assert done.summary["fusion"]["fused_with"] == 0
        assert stored(db, job_id) == expected[index]
    assert store.steps(group.key) == []


def test_a_fused_tasks_job_run_alone_resumes_from_its_own_checkpoint(
        db: Engine, stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """A task whose jobs run one by one (here: kept apart) dies mid-job; sent again, that
    job resumes from its own checkpoint, the others start from step 0."""
    monkeypatch.setattr(fused_run, "_fusion_plan", lambda *_, **__: (None, "kept apart"))
    settings = settings_of(stack)
    task, ids = submitted(db, settings, SWEEP)
    with monkeypatch.context() as patch:
        die_after_checkpoints(patch, count=2, writes=5, checkpointer=JobCheckpointer)
        with pytest.raises(Killed):
            execute(task, db=db, settings=settings, worker="first")
    store = CheckpointStore(settings.checkpoints)
    checkpoint = store.steps(task[0])[-1]
    orphaned(db, ids)
    with db.connect() as conn:
        left = metrics.last_steps(conn, ids)
    assert left[ids[0]] > checkpoint
    assert all(left[job_id] == -1 for job_id in ids[1:])  # never started

    execute(task, db=db, settings=settings, worker="second")

    for index, job_id in enumerate(ids):
        done = get(db, job_id)
        assert done.status == jobs.SUCCEEDED, done.error
        assert done.summary is not None
        assert done.summary["attempts"] == 2
        assert done.summary["fusion"] == {"fused_with": 0, "reason": "kept apart"}
        recomputed = left[job_id] - checkpoint if index == 0 else 0
        assert done.summary["steps_recomputed"] == recomputed
        alone, _ = engine_history(done.spec)
        assert stored(db, job_id) == alone
