"""Read the log lines workers captured while they ran a job."""

from __future__ import annotations

import logging
import uuid
from typing import Literal

from sqlalchemy import Engine

from optimlab.service.db import job_logs
from optimlab.service.db.models import JobLog
from optimlab.service.jobs.callers import Caller
from optimlab.service.jobs.ownership import get_job

LevelName = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def read_logs(*, db: Engine, caller: Caller, job_id: uuid.UUID, attempt: int | None,
              min_level: LevelName, limit: int) -> list[JobLog]:
    """The job's lines of ``min_level`` or above, oldest first."""
    get_job(db=db, caller=caller, job_id=job_id)
    with db.connect() as conn:
        return job_logs.read_lines(conn, job_id, attempt=attempt,
                                   min_level=logging.getLevelNamesMapping()[min_level],
                                   limit=limit)


def level_name(level: int) -> str:
    """``WARNING`` for 30; a level between the standard ones as ``Level 25``."""
    return logging.getLevelName(level)
