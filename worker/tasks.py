"""The Celery tasks: job ids in, the job rows and their metrics updated, by the one
executor. The two message kinds stay as the wire names them (a job alone, a sweep's fused
task): the job rows, not the message, decide how the jobs run (execution.py)."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.exceptions import Reject

from optimlab.service.db import workers
from optimlab.service.settings import Settings
from optimlab.worker.celery_app import RUN_FUSED, RUN_JOB
from optimlab.worker.execution import execute
from optimlab.worker.process import process_engine


def register_tasks(app: Celery, settings: Settings) -> None:
    @app.task(name=RUN_JOB, bind=True)  # type: ignore[untyped-decorator]
    def run_job(task: Any, job_id: str) -> None:
        worker = _running_worker(task)
        execute([job_id], db=process_engine(settings.database), settings=settings,
                worker=worker)

    @app.task(name=RUN_FUSED, bind=True)  # type: ignore[untyped-decorator]
    def run_fused(task: Any, job_ids: list[str]) -> None:
        worker = _running_worker(task)
        execute(job_ids, db=process_engine(settings.database), settings=settings,
                worker=worker)

    def _running_worker(task: Any) -> str:
        worker = str(task.request.hostname)
        with process_engine(settings.database).connect() as conn:
            stopping = not workers.is_registered(conn, worker)
        if stopping:
            # This worker is shutting down: leave the jobs to another one.
            raise Reject(f"worker {worker} is stopping", requeue=True)
        return worker
