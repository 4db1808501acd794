"""Jobs that wait for a GPU nobody offers any more: cuda ones fail saying why, auto ones
move to the cpu queue.

A cuda job is refused at submit when no GPU worker is alive (see ``submit``); one queued
while a GPU worker lived would still wait forever once the last one is gone. The API runs
this check periodically (every process that serves jobs does, so it also runs when no
worker runs at all): once no worker has served the gpu queue for
``unserved_wait_seconds`` by this process's clock, the jobs queued there since before
that are dealt with. Each change is conditional on the job still being queued, so a
worker that takes the job meanwhile, or a second API process, wins. CPU queues are never
checked: jobs there wait for a worker, as ever.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import anyio
import anyio.to_thread
from sqlalchemy import Engine

from optimlab.service.db import jobs
from optimlab.service.db.models import Job, utcnow
from optimlab.service.jobs.dispatch import Dispatcher
from optimlab.service.jobs.submit import count_gpu_workers
from optimlab.service.settings import Settings

log = logging.getLogger(__name__)


class UnservedQueue:
    def __init__(self, settings: Settings, dispatcher: Dispatcher) -> None:
        self.settings = settings
        self.dispatcher = dispatcher
        self.queue = settings.queue("gpu")
        self.unserved_since: datetime | None = None  # first check that saw no GPU worker

    def check(self, db: Engine) -> tuple[list[Job], list[Job]]:
        """Fail the cuda jobs that waited too long, move the auto ones: (failed, moved)."""
        with db.begin() as conn:
            now = utcnow()
            if count_gpu_workers(conn, self.settings) > 0:
                self.unserved_since = None
                return [], []
            self.unserved_since = self.unserved_since or now
            cutoff = now - timedelta(seconds=self.settings.unserved_wait_seconds)
            if self.unserved_since > cutoff:
                return [], []
            waiting = jobs.waiting_since(conn, self.queue, queued_before=cutoff)
        failed = [job for job in waiting if job.spec.get("device") == "cuda" and
                  self._fail(db, job)]
        moved = [job for job in waiting if job.spec.get("device") != "cuda" and
                 self._move(db, job)]
        return failed, moved

    def _fail(self, db: Engine, job: Job) -> bool:
        wait = self.settings.unserved_wait_seconds
        with db.begin() as conn:
            done = jobs.fail_queued(
                conn, job.id, f"no GPU worker: no live worker has served the queue "
                              f"{self.queue!r} for {wait:g} s (unserved_wait_seconds); start "
                              "one (`optimlab worker --gpus all` on a host with a GPU) and "
                              "rerun the job, or rerun it with device cpu")
        if done:
            log.warning("job %s failed: no GPU worker for %g s", job.id, wait)
        return done

    def _move(self, db: Engine, job: Job) -> bool:
        # device auto: it went to the gpu queue because a GPU worker lived; the CPU will do.
        cpu = self.settings.queue("cpu")
        with db.begin() as conn:
            moved = jobs.move_queued(conn, job.id, cpu)
        if moved:
            self.dispatcher.dispatch(str(job.id), cpu)
            log.warning("job %s (device auto) moved to queue %s: no GPU worker", job.id, cpu)
        return moved


async def watch(db: Engine, dispatcher: Dispatcher, settings: Settings) -> None:
    """Run the check every heartbeat until cancelled; a failed check (database away) waits
    for the next."""
    check = UnservedQueue(settings, dispatcher)
    while True:
        await anyio.sleep(settings.heartbeat_seconds)
        try:
            await anyio.to_thread.run_sync(check.check, db)
        except Exception as exc:  # the watch must outlive a database or broker outage
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            log.warning("unserved queue check failed: %s", first[:200])
