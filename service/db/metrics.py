"""The metric store: each series of a job kept as packed chunks, one per stored batch.

A batch of a run becomes one row per series (service/db/packing.py has the layout); reads
fetch the chunks that overlap the steps asked for and cut them to the exact range.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import ColumnElement, Connection, Select, delete, func, insert, select, update

from optimlab.service.db.models import MetricChunk
from optimlab.service.db.packing import Steps, Values, pack, unpack

# (step, name, value), as the engine produces them.
Point = tuple[int, str, float]
# name -> (steps, values), steps strictly increasing: a batch by series (values may be a
# float array).
Columns = Mapping[str, tuple[Sequence[int], Sequence[float] | npt.NDArray[np.floating[Any]]]]
chunks = MetricChunk.__table__

_EMPTY_STEPS: Steps = np.empty(0, dtype=np.int64)
_EMPTY_VALUES: Values = np.empty(0, dtype=np.float64)


@dataclass
class Series:
    name: str
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


def write_points(conn: Connection, job_id: uuid.UUID, points: Sequence[Point]) -> None:
    """Store points given one by one (in step order within each series)."""
    columns: dict[str, tuple[list[int], list[float]]] = {}
    for step, name, value in points:
        steps, values = columns.get(name) or columns.setdefault(name, ([], []))
        steps.append(step)
        values.append(value)
    write_columns(conn, job_id, columns)


def write_columns(conn: Connection, job_id: uuid.UUID, columns: Columns) -> None:
    """Store one batch: a chunk per series, in the caller's transaction."""
    write_many(conn, [(job_id, columns)])


def write_many(conn: Connection, batches: Iterable[tuple[uuid.UUID, Columns]]) -> None:
    """Store several jobs' batches with one statement (a fused run's flush)."""
    rows = [_chunk_row(job_id, name, steps, values) for job_id, columns in batches
            for name, (steps, values) in columns.items() if len(steps)]
    if rows:
        conn.execute(insert(MetricChunk), rows)


def _chunk_row(job_id: uuid.UUID, name: str, steps: Sequence[int],
               values: Sequence[float] | npt.NDArray[np.floating[Any]]) -> dict[str, Any]:
    step_bytes, value_bytes = pack(steps, values)
    return {"job_id": job_id, "name": name, "first_step": int(steps[0]),
            "last_step": int(steps[-1]), "count": len(steps), "step_bytes": step_bytes,
            "value_bytes": value_bytes}


def has_chunk(conn: Connection, job_id: uuid.UUID, name: str, first_step: int) -> bool:
    """Whether a batch that starts series ``name`` at ``first_step`` is stored: a retried
    write asks it after a commit whose acknowledgement was lost (a series' steps only grow
    within a run, so no other batch of the run starts there)."""
    query = select(chunks.c.count).where(chunks.c.job_id == job_id, chunks.c.name == name,
                                         chunks.c.first_step == first_step)
    return conn.execute(query).first() is not None


def delete_points(conn: Connection, job_id: uuid.UUID) -> None:
    delete_jobs_points(conn, [job_id])


def delete_jobs_points(conn: Connection, job_ids: Sequence[uuid.UUID]) -> None:
    conn.execute(delete(MetricChunk).where(MetricChunk.job_id.in_(list(job_ids))))


def delete_after(conn: Connection, job_id: uuid.UUID, step: int) -> None:
    """Delete the job's points past ``step`` in every series (a resumed run replaces what
    the dead run stored after its checkpoint): chunks wholly past it go, a chunk that
    straddles it is rewritten with its points up to ``step`` (same key: its first step)."""
    c = chunks.c
    conn.execute(delete(MetricChunk).where(c.job_id == job_id, c.first_step > step))
    straddling = conn.execute(
        select(c.name, c.first_step, c.last_step, c.step_bytes, c.value_bytes)
        .where(c.job_id == job_id, c.first_step <= step, c.last_step > step)).all()
    for name, first, last, step_bytes, value_bytes in straddling:
        steps, values = unpack(int(first), int(last), step_bytes, value_bytes)
        keep = int(np.searchsorted(steps, step, side="right"))
        row = _chunk_row(job_id, name, steps[:keep].tolist(), values[:keep])
        conn.execute(update(MetricChunk)
                     .where(c.job_id == job_id, c.name == name, c.first_step == first)
                     .values(last_step=row["last_step"], count=row["count"],
                             step_bytes=row["step_bytes"], value_bytes=row["value_bytes"]))


def last_step(conn: Connection, job_id: uuid.UUID, name: str) -> int | None:
    """The highest stored step of one series of the job (None: no point)."""
    last = conn.scalar(select(func.max(chunks.c.last_step))
                       .where(chunks.c.job_id == job_id, chunks.c.name == name))
    return None if last is None else int(last)


def last_steps(conn: Connection, job_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """The last step stored of each job, any series (jobs without points: -1)."""
    c = chunks.c
    query = (select(c.job_id, func.max(c.last_step)).where(c.job_id.in_(list(job_ids)))
             .group_by(c.job_id))
    found = {job_id: int(last) for job_id, last in conn.execute(query)}
    return {job_id: found.get(job_id, -1) for job_id in job_ids}


def series_names(conn: Connection, job_id: uuid.UUID) -> list[str]:
    query = select(chunks.c.name).where(chunks.c.job_id == job_id).distinct()
    return sorted(conn.scalars(query))


@dataclass(frozen=True)
class SeriesExtent:
    name: str
    points: int
    first_step: int
    last_step: int


def series_extents(conn: Connection, job_id: uuid.UUID) -> list[SeriesExtent]:
    """Each stored series of the job with its point count and step range, by name: read off
    the chunks' bounds, no values unpacked."""
    c = chunks.c
    query = (select(c.name, func.sum(c.count), func.min(c.first_step), func.max(c.last_step))
             .where(c.job_id == job_id).group_by(c.name).order_by(c.name))
    return [SeriesExtent(str(name), int(points), int(first), int(last))
            for name, points, first, last in conn.execute(query)]


def chunk_query(job_id: uuid.UUID, names: Sequence[str], *, lo: int | None,
                hi: int | None, also: Sequence[ColumnElement[bool]] = ()) -> Select[Any]:
    """The chunks of the named series that hold steps in [lo, hi], by name then step."""
    c = chunks.c
    query = (select(c.name, c.first_step, c.last_step, c.step_bytes, c.value_bytes)
             .where(c.job_id == job_id, c.name.in_(names), *also)
             .order_by(c.name, c.first_step))
    if lo is not None:
        query = query.where(c.last_step >= lo)
    if hi is not None:
        query = query.where(c.first_step <= hi)
    return query


def iter_chunks(conn: Connection, query: Select[Any], *, lo: int | None,
                hi: int | None) -> Iterator[tuple[str, Steps, Values]]:
    """Each chunk of ``query`` (chunk_query's columns) decoded and cut to [lo, hi]."""
    for name, first, last, step_bytes, value_bytes in (
            conn.execute(query.execution_options(yield_per=256))):
        steps, values = unpack(int(first), int(last), step_bytes, value_bytes)
        if (lo is not None and first < lo) or (hi is not None and last > hi):
            start = 0 if lo is None else int(np.searchsorted(steps, lo, side="left"))
            stop = steps.size if hi is None else int(np.searchsorted(steps, hi, side="right"))
            steps, values = steps[start:stop], values[start:stop]
        if steps.size:
            yield str(name), steps, values


def load(conn: Connection, job_id: uuid.UUID, names: Sequence[str], *, lo: int | None = None,
         hi: int | None = None) -> dict[str, tuple[Steps, Values]]:
    """Every point of each named series with lo <= step <= hi (None: unbounded), as arrays
    in step order; a name without points gets empty arrays."""
    parts: dict[str, tuple[list[Steps], list[Values]]] = {name: ([], []) for name in names}
    if names:
        for name, steps, values in iter_chunks(conn, chunk_query(job_id, names, lo=lo, hi=hi),
                                               lo=lo, hi=hi):
            parts[name][0].append(steps)
            parts[name][1].append(values)
    return {name: _joined(steps, values) for name, (steps, values) in parts.items()}


def load_jobs(conn: Connection, job_ids: Sequence[uuid.UUID],
              name: str) -> dict[uuid.UUID, tuple[Steps, Values]]:
    """Every point of one series of each job, read in one query (jobs without it get
    empty arrays)."""
    parts: dict[uuid.UUID, tuple[list[Steps], list[Values]]] = {j: ([], []) for j in job_ids}
    c = chunks.c
    query = (select(c.job_id, c.first_step, c.last_step, c.step_bytes, c.value_bytes)
             .where(c.job_id.in_(list(job_ids)), c.name == name)
             .order_by(c.job_id, c.first_step))
    for job_id, first, last, step_bytes, value_bytes in conn.execute(query):
        steps, values = unpack(int(first), int(last), step_bytes, value_bytes)
        parts[job_id][0].append(steps)
        parts[job_id][1].append(values)
    return {job_id: _joined(steps, values) for job_id, (steps, values) in parts.items()}


def _joined(steps: list[Steps], values: list[Values]) -> tuple[Steps, Values]:
    if not steps:
        return _EMPTY_STEPS, _EMPTY_VALUES
    if len(steps) == 1:
        return steps[0], values[0]
    return np.concatenate(steps), np.concatenate(values)


def read_series(conn: Connection, job_id: uuid.UUID, names: Sequence[str]) -> list[Series]:
    """Every point of each named series, in step order; unknown names give empty series."""
    loaded = load(conn, job_id, list(dict.fromkeys(names)))
    return [Series(name, steps.tolist(), values.tolist())
            for name, (steps, values) in loaded.items()]


def iter_series(conn: Connection, job_id: uuid.UUID, names: Sequence[str], *,
                lo: int | None = None,
                hi: int | None = None) -> Iterator[tuple[str, Steps, Values]]:
    """Stream the stored chunks of the named series as (name, steps, values) arrays,
    ordered by name and step, one chunk in memory at a time.

    ``lo`` and ``hi`` bound the steps (inclusive); None leaves that end open.
    """
    if names:
        yield from iter_chunks(conn, chunk_query(job_id, names, lo=lo, hi=hi), lo=lo, hi=hi)
