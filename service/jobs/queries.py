"""Read jobs and their metric histories."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

from sqlalchemy import Engine

from optimlab.service.db import jobs, metrics
from optimlab.service.db.models import Job, Sweep
from optimlab.service.jobs.errors import InvalidCursor, JobNotFound

# Series shown first when a client asks for all of them.
LEADING_SERIES = ("loss", "lr")


def get_job(*, engine: Engine, job_id: uuid.UUID) -> Job:
    with engine.connect() as conn:
        job = jobs.get_job(conn, job_id)
    if job is None:
        raise JobNotFound(job_id)
    return job


def list_jobs(*, engine: Engine, status: str | None, limit: int,
              cursor: str | None) -> tuple[list[Job], str | None]:
    """A page of jobs, newest first, and the cursor of the next page (None on the last)."""
    after = decode_cursor(cursor) if cursor else None
    with engine.connect() as conn:
        page = jobs.list_jobs(conn, status=status, limit=limit + 1, after=after)
    if len(page) <= limit:
        return page, None
    page = page[:limit]
    return page, encode_cursor(page[-1])


def encode_cursor(item: Job | Sweep) -> str:
    raw = f"{item.created_at.isoformat()}|{item.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, job_id = raw.split("|")
        return datetime.fromisoformat(created), uuid.UUID(job_id)
    except ValueError:
        raise InvalidCursor("cursor is not one this API returned") from None


def metric_names(*, engine: Engine, job_id: uuid.UUID, names: list[str] | None) -> list[str]:
    get_job(engine=engine, job_id=job_id)
    if names:
        return names
    with engine.connect() as conn:
        return sorted(metrics.series_names(conn, job_id), key=leading_first)


def series_extents(*, engine: Engine, job_id: uuid.UUID) -> list[metrics.SeriesExtent]:
    """Every stored series of the job, loss and lr first, then by name."""
    get_job(engine=engine, job_id=job_id)
    with engine.connect() as conn:
        extents = metrics.series_extents(conn, job_id)
    return sorted(extents, key=lambda extent: leading_first(extent.name))


def leading_first(name: str) -> tuple[int, str]:
    """The order of a job's series: LEADING_SERIES first, then by name."""
    rank = LEADING_SERIES.index(name) if name in LEADING_SERIES else len(LEADING_SERIES)
    return rank, name


def read_metrics(*, engine: Engine, job_id: uuid.UUID,
                 names: list[str] | None) -> list[metrics.Series]:
    wanted = metric_names(engine=engine, job_id=job_id, names=names)
    with engine.connect() as conn:
        return metrics.read_series(conn, job_id, wanted)
