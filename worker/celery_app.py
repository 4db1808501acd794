"""The Celery app, configured for long training jobs.

* ``acks_late`` with prefetch 1: a task is acknowledged when it ends, and a
  worker holds only the job it runs (Redis redelivers what a dead worker held);
* queues are declared (``cpu`` and ``gpu``, optionally prefixed), never
  created by accident;
* no result backend: the job row in SQL is the source of truth.
"""

from __future__ import annotations

from celery import Celery
from kombu.entity import Queue

from optimlab.service.settings import Settings
from optimlab.worker.broker import TRANSPORT, ensure_folders

RUN_JOB = "optimlab.run_job"
RUN_FUSED = "optimlab.run_fused"
QUEUE_KINDS = ("cpu", "gpu")


def create_celery(settings: Settings) -> Celery:
    app = Celery("optimlab", set_as_current=False)
    options = settings.broker_transport_options()
    if settings.embedded_broker:
        ensure_folders(options)
    app.conf.update(
        broker_url=settings.broker,
        broker_transport=TRANSPORT if settings.embedded_broker else None,
        broker_transport_options=options,
        broker_connection_retry_on_startup=True,
        task_queues=[Queue(settings.queue(kind), routing_key=settings.queue(kind))
                     for kind in QUEUE_KINDS],
        task_default_queue=settings.queue("cpu"),
        task_create_missing_queues=False,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # How long a killed pool child's task waits for a result before its message goes
        # back to the queue (10 s by default): there are no results here, and the job is
        # taken over as soon as the message comes back (its holder process is dead).
        worker_lost_wait=1.0,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    return app


class CeleryDispatcher:
    """Sends "run job X" messages; the service's only view of Celery."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def dispatch(self, job_id: str, queue: str) -> None:
        self._send(RUN_JOB, [job_id], queue)

    def dispatch_fused(self, job_ids: list[str], queue: str) -> None:
        self._send(RUN_FUSED, [job_ids], queue)

    def _send(self, task: str, args: list[object], queue: str) -> None:
        # Fail fast when the broker is down: the caller reports it instead of hanging.
        self.app.send_task(task, args=args, queue=queue, routing_key=queue,
                           retry=True, retry_policy={"max_retries": 2, "interval_start": 0,
                                                     "interval_step": 0.2, "interval_max": 0.5})

    def ping(self, timeout: float = 2.0) -> None:
        """Raise if the broker cannot be reached."""
        with self.app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0,
                                         timeout=timeout)
