"""The metric store: points keyed by (job, name, step), written in batches.

PostgreSQL gets binary ``COPY`` (several times faster than multi-row INSERTs);
SQLite gets one ``executemany`` per batch inside the caller's transaction.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, select

from optimlab.service.db.models import Metric

# (step, name, value), as the engine produces them.
Point = tuple[int, str, float]
metrics = Metric.__table__


@dataclass
class Series:
    name: str
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


def write_points(conn: Connection, job_id: uuid.UUID, points: Sequence[Point]) -> None:
    if not points:
        return
    if conn.dialect.name == "postgresql":
        _copy_points(conn, job_id, points)
    else:
        # Straight to the driver: SQLAlchemy's per-row parameter processing costs ~4x.
        # The job id is written as SQLAlchemy's Uuid type stores it on SQLite (32 hex digits).
        key = job_id.hex
        conn.exec_driver_sql(
            "INSERT INTO metrics (job_id, name, step, value) VALUES (?, ?, ?, ?)",
            [(key, name, step, None if math.isnan(value) else value)
             for step, name, value in points])


def _copy_points(conn: Connection, job_id: uuid.UUID, points: Sequence[Point]) -> None:
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy("COPY metrics (job_id, name, step, value) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["uuid", "text", "int8", "float8"])
        for step, name, value in points:
            copy.write_row((job_id, name, step, value))


def series_names(conn: Connection, job_id: uuid.UUID) -> list[str]:
    query = select(metrics.c.name).where(metrics.c.job_id == job_id).distinct()
    return sorted(conn.scalars(query))


def read_series(conn: Connection, job_id: uuid.UUID, names: Sequence[str]) -> list[Series]:
    """Every point of each named series, in step order; unknown names give empty series."""
    by_name = {name: Series(name) for name in names}
    for name, step, value in iter_points(conn, job_id, names):
        series = by_name[name]
        series.steps.append(step)
        series.values.append(value)
    return list(by_name.values())


def iter_points(conn: Connection, job_id: uuid.UUID, names: Sequence[str], *,
                lo: int | None = None,
                hi: int | None = None) -> Iterator[tuple[str, int, float]]:
    """Stream (name, step, value) ordered by name and step, NaN where the store has NULL.

    ``lo`` and ``hi`` bound the steps (inclusive); None leaves that end open.
    """
    query = (select(metrics.c.name, metrics.c.step, metrics.c.value)
             .where(metrics.c.job_id == job_id, metrics.c.name.in_(names))
             .order_by(metrics.c.name, metrics.c.step))
    if lo is not None:
        query = query.where(metrics.c.step >= lo)
    if hi is not None:
        query = query.where(metrics.c.step <= hi)
    result = conn.execution_options(yield_per=10_000).execute(query)
    for name, step, value in result:
        yield name, step, math.nan if value is None else value
