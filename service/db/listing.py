"""Finding jobs: filters, sorting by creation or by any summary figure, and paging."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, exists, or_, select

from optimlab.service.db.models import Job, JobTag


@dataclass(frozen=True)
class JobFilter:
    status: str | None = None
    tag: str | None = None
    name: str | None = None  # a substring, case-insensitive
    optimizer: str | None = None
    sweep_id: uuid.UUID | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    owner: str | None = None  # only this owner's jobs; None: everyone's


@dataclass(frozen=True)
class SummaryOrder:
    """Sort by ``summary[path]`` (a number or, with ``text``, a string); missing ones last."""

    path: tuple[str, ...]
    descending: bool = False
    text: bool = False


def newest_first(conn: Connection, where: JobFilter, *, limit: int,
                 after: tuple[datetime, uuid.UUID] | None) -> list[Job]:
    """Keyset paging: ``after`` is the (created_at, id) of the last job of the previous page."""
    query = _filtered(where).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    if after is not None:
        created, last_id = after
        query = query.where(or_(Job.created_at < created,
                                and_(Job.created_at == created, Job.id < last_id)))
    return [Job(**row._mapping) for row in conn.execute(query)]


def by_summary(conn: Connection, where: JobFilter, order: SummaryOrder, *, limit: int,
               offset: int) -> list[Job]:
    element = Job.summary[order.path]
    value: ColumnElement[Any] = element.as_string() if order.text else element.as_float()
    key = value.desc() if order.descending else value.asc()
    query = (_filtered(where).order_by(value.is_(None), key, Job.created_at.desc(),
                                       Job.id.desc())
             .limit(limit).offset(offset))
    return [Job(**row._mapping) for row in conn.execute(query)]


def _filtered(where: JobFilter) -> Select[Any]:
    query = select(Job.__table__)
    if where.owner is not None:
        query = query.where(Job.owner == where.owner)
    if where.status is not None:
        query = query.where(Job.status == where.status)
    if where.tag is not None:
        query = query.where(exists().where(JobTag.job_id == Job.id, JobTag.tag == where.tag))
    if where.name:
        query = query.where(Job.name.ilike(f"%{_escape_like(where.name)}%", escape="\\"))
    if where.optimizer is not None:
        query = query.where(Job.spec[("optimizer", "name")].as_string() == where.optimizer)
    if where.sweep_id is not None:
        query = query.where(Job.sweep_id == where.sweep_id)
    if where.created_after is not None:
        query = query.where(Job.created_at >= where.created_after)
    if where.created_before is not None:
        query = query.where(Job.created_at < where.created_before)
    return query


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
