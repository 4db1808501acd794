"""Requeue jobs whose run was lost (a killed worker, the embedded broker's lost message),
and re-send queued jobs whose message the broker lost (restarted without persistence,
flushed)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol

from sqlalchemy import Engine

from optimlab.service.db import jobs, sweeps
from optimlab.service.db.models import Job, utcnow

log = logging.getLogger(__name__)


class Dispatcher(Protocol):
    """What recovery sends through (the service's Dispatcher, CeleryDispatcher, has it)."""

    def dispatch(self, job_id: str, queue: str) -> None: ...

    def dispatch_fused(self, job_ids: list[str], queue: str) -> None: ...


class BrokerContents(Protocol):
    def held_job_ids(self, queues: list[str]) -> set[str]:
        """The jobs that messages waiting in (or taken but not acknowledged from) these
        queues name."""

    def declare_queues(self) -> None:
        """Declare the queues again (a flushed Redis forgot their bindings too)."""


def requeue_orphans(db: Engine, dispatcher: Dispatcher, *, stale_after: timedelta,
                    include_queued: bool = False, outage_grace: timedelta | None = None) -> int:
    """Send running jobs whose run is lost back to their queue; return how many.

    A run is lost when its holder process died on this host, or (holder elsewhere or
    unknown) it stopped beating for ``stale_after``; a stale run whose holder lives here is
    only cut off from the database, and is left alone (for ``outage_grace``, if given).

    ``include_queued`` also re-sends every queued job: right for a broker that
    deletes a message as it is fetched (the embedded one), when no worker runs yet.
    A duplicate message is harmless: only one run can claim the job.
    """
    stale_before = utcnow() - stale_after
    alive_before = None if outage_grace is None else utcnow() - outage_grace
    with db.begin() as conn:
        orphans = jobs.orphaned_jobs(conn, stale_after=stale_after, include_queued=include_queued)
    requeued = []
    for job in orphans:
        if job.status == jobs.RUNNING and not jobs.abandoned(
                job, stale_before=stale_before, alive_before=alive_before):
            continue
        with db.begin() as conn:
            if job.status == jobs.RUNNING and not jobs.requeue_job(conn, job):
                continue
        requeued.append(job)
    resend(db, dispatcher, requeued, why="sent back")
    return len(requeued)


def resend(db: Engine, dispatcher: Dispatcher, requeued: Sequence[Job], *, why: str) -> None:
    """Send requeued jobs to their queues: the jobs of one fused task together, as one
    fused task again (its new attempt resumes the group's checkpoint: one job at a time,
    each would start from step 0), the others one by one."""
    with db.connect() as conn:
        tasks = sweeps.fused_tasks(conn, [job.id for job in requeued]) if requeued else {}
    groups: dict[tuple[str, str], list[Job]] = {}
    for job in requeued:
        task = tasks.get(job.id)
        if task is None:
            dispatcher.dispatch(str(job.id), job.queue)
            log.warning("job %s (%s) %s to queue %s", job.id, job.status, why, job.queue)
        else:
            groups.setdefault((task[0], job.queue), []).append(job)
    for (_, queue), members in groups.items():
        order = {job_id: k for k, job_id in enumerate(tasks[members[0].id])}
        ids = sorted((str(job.id) for job in members), key=order.__getitem__)
        dispatcher.dispatch_fused(ids, queue)
        log.warning("jobs %s of a fused task %s to queue %s together", ", ".join(ids), why,
                    queue)


def resend_lost(db: Engine, dispatcher: Dispatcher, broker: BrokerContents, *,
                older_than: timedelta) -> int:
    """Re-send each queued job, queued over ``older_than`` ago, that no message in the broker
    names; return how many.

    Comparing with what the broker holds keeps a long healthy queue from being doubled;
    the age bound skips jobs whose message is being sent right now. A fused task's message
    names all its jobs; a job re-sent alone still runs exactly once (the claim decides).
    """
    with db.begin() as conn:
        queued = jobs.queued_before(conn, utcnow() - older_than)
    if not queued:
        return 0
    held = broker.held_job_ids(sorted({queue for _, queue in queued}))
    lost = [(job_id, queue) for job_id, queue in queued if str(job_id) not in held]
    if lost:
        broker.declare_queues()
    for job_id, queue in lost:
        dispatcher.dispatch(str(job_id), queue)
    if lost:
        log.warning("%d queued jobs had no message in the broker: sent again (%s%s)",
                    len(lost), ", ".join(str(job_id) for job_id, _ in lost[:5]),
                    ", ..." if len(lost) > 5 else "")
    return len(lost)
