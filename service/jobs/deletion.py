"""Delete a finished job, with its points, tags, log lines and checkpoints."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import Engine

from optimlab.service.db import jobs
from optimlab.service.jobs.callers import Caller
from optimlab.service.jobs.errors import JobConflict
from optimlab.service.jobs.ownership import job_for
from optimlab.service.settings import Settings
from optimlab.worker.checkpoints import CheckpointStore

log = logging.getLogger(__name__)


def delete_job(*, db: Engine, caller: Caller, job_id: uuid.UUID, settings: Settings) -> None:
    """Refuse a queued or running job: a worker may be about to run it or be writing it.
    Its checkpoints go after the row (a store that fails leaves files, never the job)."""
    with db.begin() as conn:
        job = job_for(conn, caller, job_id, lock=True)
        if job.status in (jobs.QUEUED, jobs.RUNNING):
            raise JobConflict(f"job {job_id} is {job.status}: cancel it first "
                              f"(POST /v1/jobs/{job_id}/cancel), then delete it")
        jobs.delete_job(conn, job_id)
    try:
        CheckpointStore(settings.checkpoints).delete(str(job_id))
    except Exception:
        log.warning("job %s: its checkpoints could not be deleted", job_id, exc_info=True)
