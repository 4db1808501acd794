"""Read jobs and their metric histories."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

from sqlalchemy import Engine

from optimlab.service.db import metrics
from optimlab.service.db.models import Job, Sweep
from optimlab.service.jobs import ownership
from optimlab.service.jobs.callers import Caller
from optimlab.service.jobs.errors import InvalidCursor

# Series shown first when a client asks for all of them.
LEADING_SERIES = ("loss", "lr")


def get_job(*, db: Engine, caller: Caller, job_id: uuid.UUID) -> Job:
    """The job, or JobNotFound (also for another owner's: see :mod:`ownership`)."""
    return ownership.get_job(db=db, caller=caller, job_id=job_id)


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


def metric_names(*, db: Engine, caller: Caller, job_id: uuid.UUID,
                 names: list[str] | None) -> list[str]:
    get_job(db=db, caller=caller, job_id=job_id)
    if names:
        return names
    with db.connect() as conn:
        return sorted(metrics.series_names(conn, job_id), key=leading_first)


def series_extents(*, db: Engine, caller: Caller,
                   job_id: uuid.UUID) -> list[metrics.SeriesExtent]:
    """Every stored series of the job, loss and lr first, then by name."""
    get_job(db=db, caller=caller, job_id=job_id)
    with db.connect() as conn:
        extents = metrics.series_extents(conn, job_id)
    return sorted(extents, key=lambda extent: leading_first(extent.name))


def leading_first(name: str) -> tuple[int, str]:
    """The order of a job's series: LEADING_SERIES first, then by name."""
    rank = LEADING_SERIES.index(name) if name in LEADING_SERIES else len(LEADING_SERIES)
    return rank, name


def read_metrics(*, db: Engine, caller: Caller, job_id: uuid.UUID,
                 names: list[str] | None) -> list[metrics.Series]:
    wanted = metric_names(db=db, caller=caller, job_id=job_id, names=names)
    with db.connect() as conn:
        return metrics.read_series(conn, job_id, wanted)
