"""Cancel a job: a queued one never runs; a running one stops at its next metrics write."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine

from optimlab.service.db import jobs
from optimlab.service.db.models import Job
from optimlab.service.jobs.callers import Caller
from optimlab.service.jobs.errors import JobConflict
from optimlab.service.jobs.ownership import job_for


def cancel_job(*, db: Engine, caller: Caller, job_id: uuid.UUID) -> Job:
    with db.begin() as conn:
        job = job_for(conn, caller, job_id)
        if not jobs.cancel_job(conn, job_id):
            raise JobConflict(f"job {job_id} is {job.status}; only queued or running "
                              "jobs can be cancelled")
        cancelled = jobs.get_job(conn, job_id)
    assert cancelled is not None
    return cancelled
