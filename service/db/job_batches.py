"""Many queued jobs inserted at once (a sweep's): one statement for the jobs, one for tags.

:func:`~optimlab.service.db.jobs.insert_job` costs two round trips a job (the insert, then
reading the row back); a sweep of thousands of points would spend most of its submission
there. The rows are the ones ``insert_job`` stores, in the same order.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, insert

from optimlab.service.db.jobs import QUEUED
from optimlab.service.db.models import Job, JobTag, utcnow


@dataclass(frozen=True)
class NewJob:
    name: str
    spec: dict[str, Any]
    queue: str
    sweep_point: dict[str, Any] | None = None


def insert_jobs(conn: Connection, new: list[NewJob], *,
                sweep_id: uuid.UUID | None = None, owner: str | None = None
                ) -> list[uuid.UUID]:
    """Insert the jobs as queued, in this order; return their ids, in this order.

    Jobs are listed by ``(created_at, id)``: each gets its own microsecond, so they keep the
    order they were given in, as jobs inserted one by one do. (Ids, not ``Job`` objects:
    building an ORM object per job costs as much as its share of the insert.)"""
    now = utcnow()
    ids = [uuid.uuid4() for _ in new]
    if not ids:
        return []
    conn.execute(insert(Job), [
        {"id": job_id, "name": job.name, "status": QUEUED, "spec": job.spec, "queue": job.queue,
         "created_at": now + timedelta(microseconds=i), "attempt": 0, "sweep_id": sweep_id,
         "sweep_point": job.sweep_point, "owner": owner}
        for i, (job_id, job) in enumerate(zip(ids, new, strict=True))])
    tags = [{"job_id": job_id, "tag": tag} for job_id, job in zip(ids, new, strict=True)
            for tag in sorted(set(job.spec.get("tags") or []))]
    if tags:
        conn.execute(insert(JobTag), tags)
    return ids
