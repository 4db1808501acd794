"""The reconciler and the staleness check against the real brokers and databases: what the
broker holds is read back, only lost queued jobs are re-sent, and a stale run whose holder
process lives is not taken for dead."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import Engine, update

from optimlab.service.db import jobs
from optimlab.service.db.holders import this_process
from optimlab.service.db.models import Job, utcnow
from optimlab.worker.celery_app import CeleryDispatcher, create_celery
from optimlab.worker.queue_contents import CeleryQueueContents
from optimlab.worker.recovery import requeue_orphans, resend_lost
from tests.conftest import Stack
from tests.seed_table import SEED_SPEC
from tests.stacks import queued_messages


def queue_jobs(db: Engine, stack: Stack, count: int) -> list[uuid.UUID]:
    queue = stack.settings.queue("cpu")
    with db.begin() as conn:
        ids = [jobs.insert_job(conn, name="t", spec=SEED_SPEC, queue=queue).id
               for _ in range(count)]
        conn.execute(update(Job).values(created_at=utcnow() - timedelta(minutes=5)))
    return ids


def test_only_queued_jobs_the_broker_lost_are_sent_again(db: Engine, stack: Stack) -> None:
    app = create_celery(stack.settings)
    dispatcher, contents = CeleryDispatcher(app), CeleryQueueContents(app, stack.settings)
    queue = stack.settings.queue("cpu")
    kept, lost, fused = queue_jobs(db, stack, 3)
    dispatcher.dispatch(str(kept), queue)
    dispatcher.dispatch_fused([str(fused)], queue)  # names its jobs in a list

    assert contents.held_job_ids([queue]) == {str(kept), str(fused)}
    sent = resend_lost(db, dispatcher, contents, older_than=timedelta(seconds=1))
    again = resend_lost(db, dispatcher, contents, older_than=timedelta(seconds=1))

    assert (sent, again) == (1, 0)
    assert contents.held_job_ids([queue]) == {str(kept), str(fused), str(lost)}
    assert queued_messages(stack) == 3


def test_recently_queued_jobs_are_left_to_their_first_message(db: Engine,
                                                              stack: Stack) -> None:
    app = create_celery(stack.settings)
    queue_jobs(db, stack, 2)

    sent = resend_lost(db, CeleryDispatcher(app), CeleryQueueContents(app, stack.settings),
                       older_than=timedelta(hours=1))

    assert sent == 0
    assert queued_messages(stack) == 0


def test_a_stale_run_whose_holder_lives_is_not_requeued(db: Engine, stack: Stack) -> None:
    me = this_process()
    alive, dead = queue_jobs(db, stack, 2)
    with db.begin() as conn:
        conn.execute(update(Job).values(
            status=jobs.RUNNING, attempt=1, heartbeat_at=utcnow() - timedelta(hours=1),
            holder_host=me.host, holder_pid=me.pid, holder_started=me.started))
        conn.execute(update(Job).where(Job.id == dead).values(holder_started=me.started - 60))
    app = create_celery(stack.settings)

    count = requeue_orphans(db, CeleryDispatcher(app), stale_after=timedelta(seconds=60))

    assert count == 1
    with db.connect() as conn:
        assert jobs.get_job(conn, alive).status == jobs.RUNNING  # type: ignore[union-attr]
        assert jobs.get_job(conn, dead).status == jobs.QUEUED  # type: ignore[union-attr]


def test_a_live_holder_silent_past_the_outage_grace_is_requeued(db: Engine,
                                                                stack: Stack) -> None:
    me = this_process()
    (job_id,) = queue_jobs(db, stack, 1)
    with db.begin() as conn:
        conn.execute(update(Job).values(
            status=jobs.RUNNING, attempt=1, heartbeat_at=utcnow() - timedelta(hours=1),
            holder_host=me.host, holder_pid=me.pid, holder_started=me.started))
    dispatcher = CeleryDispatcher(create_celery(stack.settings))

    within = requeue_orphans(db, dispatcher, stale_after=timedelta(seconds=60),
                             outage_grace=timedelta(hours=2))
    past = requeue_orphans(db, dispatcher, stale_after=timedelta(seconds=60),
                           outage_grace=timedelta(minutes=30))

    assert (within, past) == (0, 1)
    with db.connect() as conn:
        assert jobs.get_job(conn, job_id).status == jobs.QUEUED  # type: ignore[union-attr]
