"""What a worker process does besides running tasks.

In the main process: register in the workers table once consuming (``/readyz``
and job routing read it), refresh that row, requeue jobs whose worker died, re-send
queued jobs whose message the broker lost (the reconciler), and when asked to stop,
unregister (tasks still delivered during the shutdown go back to the queue) and hand
this worker's running jobs back to the queue:
the runs see it at their next metrics write and end, so a warm shutdown takes
about a second instead of waiting for training to finish. In each pool child:
forget the parent's database connections, size torch's thread pool to its
share of the cores, and freeze what it inherited out of the garbage collector's way.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from datetime import timedelta
from typing import Any

import torch
from celery import Celery
from celery.signals import (
    worker_process_init,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)

from optimlab.service.db import jobs, workers
from optimlab.service.settings import Settings
from optimlab.worker.celery_app import CeleryDispatcher
from optimlab.worker.process import forget_inherited_engines, process_engine
from optimlab.worker.queue_contents import CeleryQueueContents
from optimlab.worker.recovery import requeue_orphans, resend, resend_lost

log = logging.getLogger(__name__)


class WorkerMonitor:
    def __init__(self, app: Celery, settings: Settings, *, queues: list[str], device: str,
                 threads_per_child: int) -> None:
        self.app = app
        self.settings = settings
        self.queues = queues
        self.device = device
        self.threads_per_child = threads_per_child
        self.name = ""
        self.wake = threading.Event()
        self.shutting_down = False
        self.monitor: threading.Thread | None = None

    def connect(self) -> None:
        worker_ready.connect(self.on_ready, weak=False)
        worker_shutting_down.connect(self.on_shutting_down, weak=False)
        worker_shutdown.connect(self.on_shutdown, weak=False)
        worker_process_init.connect(self.on_child_start, weak=False)

    def on_ready(self, sender: Any = None, **_: Any) -> None:
        self.name = str(sender.hostname)
        with process_engine(self.settings.database).begin() as conn:
            workers.register_worker(conn, name=self.name, queues=self.queues,
                                    device=self.device, pid=os.getpid())
        self.monitor = threading.Thread(target=self._watch, name="worker-monitor", daemon=True)
        self.monitor.start()
        log.info("worker %s consumes %s on %s", self.name, ",".join(self.queues), self.device)

    def on_shutting_down(self, **_: Any) -> None:
        # Runs inside a signal handler: only wake the monitor thread, which does the work.
        self.shutting_down = True
        self.wake.set()

    def on_shutdown(self, **_: Any) -> None:
        self.shutting_down = True
        self.wake.set()
        if self.monitor is not None:
            self.monitor.join(timeout=5)
        if self.name:
            with process_engine(self.settings.database).begin() as conn:
                workers.unregister_worker(conn, self.name)

    def on_child_start(self, **_: Any) -> None:
        forget_inherited_engines()
        torch.set_num_threads(self.threads_per_child)
        # The parent froze what torch left before it built Celery's worker; what Celery
        # built since lives as long as this child too: out of the collector's full passes.
        gc.freeze()

    def _watch(self) -> None:
        db = process_engine(self.settings.database)
        dispatcher = CeleryDispatcher(self.app)
        contents = CeleryQueueContents(self.app, self.settings)
        stale_after = timedelta(seconds=self.settings.stale_after_seconds)
        outage_grace = timedelta(seconds=self.settings.outage_grace_seconds)
        orphans_from = time.monotonic()  # no orphan check before this (after an outage)
        reconcile_at = time.monotonic() + self.settings.reconcile_seconds
        failures = 0
        while True:
            self.wake.wait(self.settings.heartbeat_seconds)
            try:
                if self.shutting_down:
                    self._stop_taking_jobs(db)
                    self._hand_back_jobs(db, dispatcher)
                    return
                with db.begin() as conn:
                    workers.beat(conn, self.name)
                if time.monotonic() >= orphans_from:
                    requeue_orphans(db, dispatcher, stale_after=stale_after,
                                    outage_grace=outage_grace)
                if time.monotonic() >= reconcile_at:
                    reconcile_at = time.monotonic() + self.settings.reconcile_seconds
                    resend_lost(db, dispatcher, contents, older_than=timedelta(
                        seconds=self.settings.resend_queued_after_seconds))
                failures = 0
            except Exception:  # the monitor must outlive a database hiccup
                failures += 1
                # One traceback per outage, then a line every tenth try.
                if failures == 1 or failures % 10 == 0:
                    log.warning("worker monitor: check failed (%d in a row)", failures,
                                exc_info=failures == 1)
                # After an outage every heartbeat is old, the live runs' too: give them
                # time to beat again before any is taken for dead.
                orphans_from = time.monotonic() + self.settings.stale_after_seconds
                if self.shutting_down:
                    return

    def _stop_taking_jobs(self, db: Any) -> None:
        # Celery may still deliver a message or two while it winds down (the one we
        # are about to send back, say); a task finds its worker unregistered and
        # returns the message to the queue for another worker.
        with db.begin() as conn:
            workers.unregister_worker(conn, self.name)

    def _hand_back_jobs(self, db: Any, dispatcher: CeleryDispatcher) -> None:
        with db.begin() as conn:
            running = jobs.running_on(conn, self.name)
        handed_back = []
        for job in running:
            with db.begin() as conn:
                if jobs.requeue_job(conn, job):
                    handed_back.append(job)
        resend(db, dispatcher, handed_back, why="handed back (worker stops)")
