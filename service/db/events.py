"""Queries behind the live event streams: job states, a sweep's jobs, and points after a cursor.

A stream's cursor is (attempt, last step sent). Resuming from a step is exact because of how
runs write: a batch is one transaction holding every series for its steps, batches of a run
follow each other in step order, and a new run (a claim) deletes the old run's points and
increments ``attempt`` in one transaction. So once a step is visible, every point of every
earlier step of the same attempt is visible too, and stays so until the attempt changes.

Each query that reads points names the attempt it expects, in the same statement (one
snapshot), and finds nothing once the job has moved on: an old run's cursor is never applied
to a new run's points. The reads are index seeks on the primary key (job_id, name, step): one
per series, never a scan of the job's whole history, which may hold millions of points.
"""

from __future__ import annotations

import bisect
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Uuid,
    bindparam,
    select,
    text,
    union_all,
)

from optimlab.service.db.models import Job, Metric

metrics = Metric.__table__
# Series per statement of a page: SQLite allows at most 500 terms in a compound SELECT.
SERIES_PER_STATEMENT = 200


@dataclass(frozen=True)
class JobState:
    """What decides a stream's next move; ``summary`` and ``error`` only when asked for."""

    id: uuid.UUID
    status: str
    attempt: int
    heartbeat_at: datetime | None
    summary: dict[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True)
class Page:
    """Points of the steps (after, last], by series (in name order); NaN where NULL is stored."""

    last: int
    series: list[tuple[str, list[int], list[float]]]

    @property
    def size(self) -> int:
        return sum(len(steps) for _, steps, _ in self.series)


_LIGHT = (Job.id, Job.status, Job.attempt, Job.heartbeat_at)
_FULL = (*_LIGHT, Job.summary, Job.error)


def job_states(conn: Connection, job_ids: Sequence[uuid.UUID], *,
               detail: bool = False) -> list[JobState]:
    """The named jobs that exist, with their summary and error when ``detail``."""
    if not job_ids:
        return []
    query = select(*(_FULL if detail else _LIGHT)).where(Job.id.in_(job_ids))
    return [JobState(**row._mapping) for row in conn.execute(query)]


def sweep_job_states(conn: Connection, sweep_id: uuid.UUID) -> list[JobState]:
    """The sweep's jobs, oldest first, without summaries."""
    query = (select(*_LIGHT).where(Job.sweep_id == sweep_id)
             .order_by(Job.created_at, Job.id))
    return [JobState(**row._mapping) for row in conn.execute(query)]


# A loose index scan: each series name is one seek past the previous one, and its last step
# one more seek; the job's points themselves are never read.
_SERIES_ENDS = text("""
WITH RECURSIVE names(name) AS (
    SELECT min(name) FROM metrics WHERE job_id = :job_id
    UNION ALL
    SELECT (SELECT min(m.name) FROM metrics AS m
            WHERE m.job_id = :job_id AND m.name > names.name)
    FROM names WHERE names.name IS NOT NULL
)
SELECT names.name,
       (SELECT max(m.step) FROM metrics AS m
        WHERE m.job_id = :job_id AND m.name = names.name) AS last_step
FROM names
WHERE names.name IS NOT NULL
  AND EXISTS (SELECT 1 FROM jobs WHERE jobs.id = :job_id AND jobs.attempt = :attempt)
""").bindparams(bindparam("job_id", type_=Uuid()), bindparam("attempt", type_=Integer()))


def series_ends(conn: Connection, job_id: uuid.UUID, attempt: int) -> dict[str, int]:
    """Each stored series' last step; empty when the job is no longer at ``attempt``."""
    result = conn.execute(_SERIES_ENDS, {"job_id": job_id, "attempt": attempt})
    return {str(name): int(step) for name, step in result}


def _at_attempt(job_id: uuid.UUID, attempt: int) -> ColumnElement[bool]:
    return select(Job.id).where(Job.id == job_id, Job.attempt == attempt).exists()


def next_page(conn: Connection, job_id: uuid.UUID, attempt: int, *, after: int, upto: int,
              ends: dict[str, int], max_points: int) -> Page | None:
    """The points of the next whole steps in (after, upto], at most about ``max_points``.

    ``ends`` are the series' last steps as :func:`series_ends` read them, and ``upto`` at
    most the largest: every point up to it is stored, so each series asked for has one at
    least. Each series gives at most ``max_points // len(series)`` points; the page ends at
    the earliest step where one of them was cut short, so that it never holds part of a
    step. None when the job has moved on to another attempt.
    """
    names = sorted(name for name, last in ends.items() if last > after)
    if not names:
        return Page(last=upto, series=[])
    per_series = max(1, max_points // len(names))
    rows: dict[str, tuple[list[int], list[float]]] = {n: ([], []) for n in names}
    for start in range(0, len(names), SERIES_PER_STATEMENT):
        terms = []
        for name in names[start:start + SERIES_PER_STATEMENT]:
            term = (select(metrics.c.name, metrics.c.step, metrics.c.value)
                    .where(metrics.c.job_id == job_id, metrics.c.name == name,
                           metrics.c.step > after, metrics.c.step <= upto,
                           _at_attempt(job_id, attempt))
                    .order_by(metrics.c.step).limit(per_series).subquery())
            terms.append(select(term.c.name, term.c.step, term.c.value))
        for name, step, value in conn.execute(union_all(*terms)):
            steps, values = rows[name]
            steps.append(int(step))
            values.append(math.nan if value is None else value)
    if any(not steps for steps, _ in rows.values()):
        return None  # a series with points in the range read none: another run replaced them
    cut = [steps[-1] for steps, _ in rows.values() if len(steps) == per_series]
    last = min(cut) if cut else upto
    series = []
    for name, (steps, values) in rows.items():
        keep = bisect.bisect_right(steps, last)
        if keep:
            series.append((name, steps[:keep], values[:keep]))
    return Page(last=last, series=series)
