"""The layout the packed metric store replaced, rebuilt as a bench-only peer.

``point_rows`` is the table ``metrics`` was before migration 0005 (one row per point,
primary key (job_id, name, step), a foreign key to jobs), and :func:`write_rows` is the
``write_points`` of that time: binary COPY on PostgreSQL, one driver-level executemany on
SQLite.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable

from sqlalchemy import BigInteger, Column, Connection, Double, MetaData, Table, Text, Uuid

# (step, name, value)
Point = tuple[int, str, float]

_POSTGRES_COLUMNS = ("job_id uuid NOT NULL, name text NOT NULL, step bigint NOT NULL, "
                     "value double precision, PRIMARY KEY (job_id, name, step)")
FOREIGN_KEY = "FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE CASCADE"


def create_point_rows(conn: Connection, *, foreign_key: bool = True) -> None:
    """The table; on PostgreSQL ``foreign_key=False`` leaves the key to :func:`add_foreign_key`
    (a bulk load then validates it once instead of once per row)."""
    if conn.dialect.name == "postgresql":
        key = f", {FOREIGN_KEY}" if foreign_key else ""
        conn.exec_driver_sql(f"CREATE TABLE point_rows ({_POSTGRES_COLUMNS}{key})")
    else:
        conn.exec_driver_sql(
            "CREATE TABLE point_rows (job_id CHAR(32) NOT NULL, name TEXT NOT NULL, "
            "step BIGINT NOT NULL, value FLOAT, PRIMARY KEY (job_id, name, step), "
            f"{FOREIGN_KEY}) WITHOUT ROWID")


def add_foreign_key(conn: Connection) -> None:
    conn.exec_driver_sql(f"ALTER TABLE point_rows ADD {FOREIGN_KEY}")


# For a naive writer: SQLAlchemy Core's view of the same table (Uuid: CHAR(32) on SQLite).
point_rows = Table("point_rows", MetaData(), Column("job_id", Uuid), Column("name", Text),
                   Column("step", BigInteger), Column("value", Double))


def write_rows(conn: Connection, job_id: uuid.UUID, points: Iterable[Point]) -> None:
    """The previous ``metrics.write_points`` (before the packed store), into point_rows."""
    if conn.dialect.name == "postgresql":
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy("COPY point_rows (job_id, name, step, value) "
                         "FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["uuid", "text", "int8", "float8"])
            for step, name, value in points:
                copy.write_row((job_id, name, step, value))
    else:  # SQLite stored NaN as NULL; the job id as SQLAlchemy's Uuid does (32 hex digits)
        key = job_id.hex
        conn.exec_driver_sql(
            "INSERT INTO point_rows (job_id, name, step, value) VALUES (?, ?, ?, ?)",
            [(key, name, step, None if math.isnan(value) else value)
             for step, name, value in points])
