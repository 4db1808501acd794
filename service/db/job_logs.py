"""Queries on job_logs: the lines a worker captured while it ran a job."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select

from optimlab.service.db.models import JobLog


@dataclass(frozen=True)
class LogLine:
    """One captured line: when (naive UTC), the logging level's number, who, what."""

    at: datetime
    level: int
    logger: str
    message: str


def write_lines(conn: Connection, rows: Sequence[tuple[uuid.UUID, int, LogLine]]) -> None:
    """Store (job id, attempt, line) rows in the given order, in the caller's transaction."""
    if rows:
        conn.execute(insert(JobLog), [
            {"job_id": job_id, "attempt": attempt, "at": line.at, "level": line.level,
             "logger": line.logger, "message": line.message}
            for job_id, attempt, line in rows])


def read_lines(conn: Connection, job_id: uuid.UUID, *, attempt: int | None, min_level: int,
               limit: int) -> list[JobLog]:
    """The job's lines at ``min_level`` or above (of one run if ``attempt``), oldest first."""
    query = (select(JobLog.__table__).where(JobLog.job_id == job_id, JobLog.level >= min_level)
             .order_by(JobLog.id).limit(limit))
    if attempt is not None:
        query = query.where(JobLog.attempt == attempt)
    return [JobLog(**row._mapping) for row in conn.execute(query)]


def delete_lines(conn: Connection, job_ids: Sequence[uuid.UUID]) -> None:
    conn.execute(delete(JobLog).where(JobLog.job_id.in_(list(job_ids))))
