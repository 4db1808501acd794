"""Delete a finished job, with its points, tags and log lines."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine

from optimlab.service.db import jobs
from optimlab.service.jobs.callers import Caller
from optimlab.service.jobs.errors import JobConflict
from optimlab.service.jobs.ownership import job_for


def delete_job(*, engine: Engine, caller: Caller, job_id: uuid.UUID) -> None:
    """Refuse a queued or running job: a worker may be about to run it or be writing it."""
    with engine.begin() as conn:
        job = job_for(conn, caller, job_id, lock=True)
        if job.status in (jobs.QUEUED, jobs.RUNNING):
            raise JobConflict(f"job {job_id} is {job.status}: cancel it first "
                              f"(POST /v1/jobs/{job_id}/cancel), then delete it")
        jobs.delete_job(conn, job_id)
