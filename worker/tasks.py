"""The Celery task: a job id in, the job row and its metrics updated."""

from __future__ import annotations

from typing import Any

from celery import Celery

from optimlab.service.settings import Settings
from optimlab.worker.celery_app import RUN_JOB
from optimlab.worker.execution import execute_job
from optimlab.worker.process import process_engine


def register_tasks(app: Celery, settings: Settings) -> None:
    @app.task(name=RUN_JOB, bind=True)  # type: ignore[untyped-decorator]
    def run_job(task: Any, job_id: str) -> None:
        execute_job(job_id, engine=process_engine(settings.database), settings=settings,
                    worker=str(task.request.hostname))
