"""Requeue jobs whose run was lost: a killed worker, or the embedded broker's lost message."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import Engine

from optimlab.service.db import jobs
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
    count = 0
    for job in orphans:
        with engine.begin() as conn:
            if job.status == jobs.RUNNING and not jobs.requeue_job(conn, job):
                continue
        dispatcher.dispatch(str(job.id), job.queue)
        log.warning("job %s (%s) sent back to queue %s", job.id, job.status, job.queue)
        count += 1
    return count
