"""Sweeps: their rows, their jobs' status counts, newest-first listing."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, exists, func, insert, or_, select, update

from optimlab.service.db.models import Job, JobTag, Sweep, utcnow


def insert_sweep(conn: Connection, *, name: str, request: dict[str, Any], size: int,
                 tags: list[str], owner: str | None = None) -> Sweep:
    sweep_id = uuid.uuid4()
    conn.execute(insert(Sweep).values(id=sweep_id, name=name, request=request, size=size,
                                      tags=tags, created_at=utcnow(), owner=owner))
    sweep = get_sweep(conn, sweep_id)
    assert sweep is not None
    return sweep


def set_fusion(conn: Connection, sweep_id: uuid.UUID, fusion: dict[str, Any]) -> None:
    conn.execute(update(Sweep).where(Sweep.id == sweep_id).values(fusion=fusion))


def get_sweep(conn: Connection, sweep_id: uuid.UUID) -> Sweep | None:
    row = conn.execute(select(Sweep.__table__).where(Sweep.id == sweep_id)).one_or_none()
    return None if row is None else Sweep(**row._mapping)


def fused_tasks(conn: Connection, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    """The fused task (its job ids, in the order they were sent) each of these jobs was
    sent in, read off their sweeps' fusion plans; a job sent alone is left out."""
    query = (select(Job.id, Sweep.fusion).join(Sweep, Sweep.id == Job.sweep_id)
             .where(Job.id.in_(job_ids)))
    tasks: dict[uuid.UUID, list[str]] = {}
    for job_id, fusion in conn.execute(query):
        for task in (fusion or {}).get("tasks", []):
            if str(job_id) in task:
                tasks[job_id] = [str(member) for member in task]
                break
    return tasks


def status_counts(conn: Connection, sweep_ids: list[uuid.UUID]) -> dict[uuid.UUID,
                                                                        dict[str, int]]:
    query = (select(Job.sweep_id, Job.status, func.count())
             .where(Job.sweep_id.in_(sweep_ids)).group_by(Job.sweep_id, Job.status))
    counts: dict[uuid.UUID, dict[str, int]] = {i: {} for i in sweep_ids}
    for sweep_id, status, count in conn.execute(query):
        counts[uuid.UUID(str(sweep_id))][status] = int(count)
    return counts


def job_ids(conn: Connection, sweep_id: uuid.UUID, *, statuses: tuple[str, ...] = ()
            ) -> list[uuid.UUID]:
    query = select(Job.id).where(Job.sweep_id == sweep_id).order_by(Job.created_at, Job.id)
    if statuses:
        query = query.where(Job.status.in_(statuses))
    return list(conn.scalars(query))


def list_sweeps(conn: Connection, *, tag: str | None, limit: int,
                after: tuple[datetime, uuid.UUID] | None, owner: str | None = None
                ) -> list[Sweep]:
    """Newest first; ``after`` is the (created_at, id) of the previous page's last sweep;
    ``owner``: only that owner's (None: everyone's)."""
    query = select(Sweep.__table__).order_by(Sweep.created_at.desc(), Sweep.id.desc())
    if owner is not None:
        query = query.where(Sweep.owner == owner)
    if tag is not None:
        # A sweep's tags are copied onto its jobs, where they are indexed.
        query = query.where(exists().where(Job.sweep_id == Sweep.id, JobTag.job_id == Job.id,
                                           JobTag.tag == tag))
    if after is not None:
        created, last_id = after
        query = query.where(or_(Sweep.created_at < created,
                                and_(Sweep.created_at == created, Sweep.id < last_id)))
    return [Sweep(**row._mapping) for row in conn.execute(query.limit(limit))]
