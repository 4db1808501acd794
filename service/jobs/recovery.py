"""Requeue jobs whose run was lost: a killed worker, or the embedded broker's lost message."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Engine

from optimlab.service.db import jobs, sweeps
from optimlab.service.db.models import Job
from optimlab.service.jobs.dispatch import Dispatcher

log = logging.getLogger(__name__)


def requeue_orphans(engine: Engine, dispatcher: Dispatcher, *, stale_after: timedelta,
                    include_queued: bool = False) -> int:
    """Send running jobs without a heartbeat back to their queue; return how many.

    ``include_queued`` also re-sends every queued job: right for a broker that
    deletes a message as it is fetched (the embedded one), when no worker runs yet.
    A duplicate message is harmless: only one run can claim the job.
    """
    with engine.begin() as conn:
        orphans = jobs.orphaned_jobs(conn, stale_after=stale_after, include_queued=include_queued)
    requeued = []
    for job in orphans:
        with engine.begin() as conn:
            if job.status == jobs.RUNNING and not jobs.requeue_job(conn, job):
                continue
        requeued.append(job)
    resend(engine, dispatcher, requeued, why="sent back")
    return len(requeued)


def resend(engine: Engine, dispatcher: Dispatcher, requeued: Sequence[Job], *, why: str) -> None:
    """Send requeued jobs to their queues: the jobs of one fused task together, as one
    fused task again (its new attempt resumes the group's checkpoint: one job at a time,
    each would start from step 0), the others one by one."""
    with engine.connect() as conn:
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
