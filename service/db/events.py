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
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, or_, select

from optimlab.service.db import metrics
from optimlab.service.db.metrics import chunks
from optimlab.service.db.models import Job


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


def series_ends(conn: Connection, job_id: uuid.UUID, attempt: int) -> dict[str, int]:
    """Each stored series' last step; empty when the job is no longer at ``attempt``."""
    c = chunks.c
    query = (select(c.name, func.max(c.last_step)).where(c.job_id == job_id,
                                                          _at_attempt(job_id, attempt))
             .group_by(c.name))
    return {str(name): int(step) for name, step in conn.execute(query)}


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
    reach = _chunk_reach(conn, job_id, names, after=after, upto=upto, per_series=per_series)
    if reach.keys() != set(names):
        return None  # a series with points in the range has none: another run replaced them
    query = metrics.chunk_query(job_id, names, lo=after + 1, hi=upto, also=[
        _at_attempt(job_id, attempt),
        or_(*(and_(chunks.c.name == name, chunks.c.first_step <= last)
              for name, last in reach.items()))])
    for name, steps, values in metrics.iter_chunks(conn, query, lo=after + 1, hi=upto):
        got_steps, got_values = rows[name]
        room = per_series - len(got_steps)
        if room <= 0:
            continue
        got_steps.extend(steps[:room].tolist())
        got_values.extend(values[:room].tolist())
    if any(not steps for steps, _ in rows.values()):
        return None  # a series with points in the range read none: another run replaced them
    cut = [steps[-1] for steps, _ in rows.values() if len(steps) == per_series]
    last = min(cut) if cut else upto
    series = []
    for name, (kept_steps, kept_values) in rows.items():
        keep = bisect.bisect_right(kept_steps, last)
        if keep:
            series.append((name, kept_steps[:keep], kept_values[:keep]))
    return Page(last=last, series=series)


def _chunk_reach(conn: Connection, job_id: uuid.UUID, names: list[str], *, after: int,
                 upto: int, per_series: int) -> dict[str, int]:
    """Per series, the first step of the last chunk a page needs: enough chunks to hold
    ``per_series`` points after ``after``. Only the chunks' bounds are read here, so a
    page of a long history fetches a few chunks' bytes, not the rest of the run's."""
    c = chunks.c
    query = (select(c.name, c.first_step, c.count)
             .where(c.job_id == job_id, c.name.in_(names), c.last_step > after,
                    c.first_step <= upto)
             .order_by(c.name, c.first_step))
    reach: dict[str, int] = {}
    counted: dict[str, int] = {}
    for name, first, count in conn.execute(query):
        # The first chunk may hold steps up to ``after``: it counts for nothing.
        if name not in reach or counted[name] < per_series:
            counted[name] = counted.get(name, -count) + count
            reach[name] = int(first)
    return reach
