"""Metrics are stored packed: one row per series per batch (metric_chunks) instead of one
row per point (metrics). Existing points are packed into chunks of at most 65,536 steps.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from optimlab.service.db.packing import pack, unpack

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK = 65_536

_old = sa.table("metrics", sa.column("job_id", sa.Uuid()), sa.column("name", sa.String()),
                sa.column("step", sa.BigInteger()), sa.column("value", sa.Double()))
_new = sa.table("metric_chunks", sa.column("job_id", sa.Uuid()), sa.column("name", sa.String()),
                sa.column("first_step", sa.BigInteger()), sa.column("last_step", sa.BigInteger()),
                sa.column("count", sa.Integer()), sa.column("step_bytes", sa.LargeBinary()),
                sa.column("value_bytes", sa.LargeBinary()))


def upgrade() -> None:
    op.create_table(
        "metric_chunks",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("first_step", sa.BigInteger(), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("step_bytes", sa.LargeBinary(), nullable=True),
        sa.Column("value_bytes", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"],
                                name=op.f("fk_metric_chunks_job_id_jobs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "name", "first_step", name=op.f("pk_metric_chunks")),
    )
    conn = op.get_bind()
    for rows in _batches(_old_chunks(conn)):
        conn.execute(_new.insert(), rows)
    op.drop_table("metrics")


def _old_chunks(conn: sa.Connection) -> Iterator[dict[str, Any]]:
    query = sa.select(_old.c.job_id, _old.c.name, _old.c.step, _old.c.value).order_by(
        _old.c.job_id, _old.c.name, _old.c.step)
    key: tuple[Any, str] | None = None
    steps: list[int] = []
    values: list[float] = []
    for job_id, name, step, value in conn.execute(query.execution_options(yield_per=10_000)):
        if (job_id, name) != key or len(steps) == CHUNK:
            if key is not None and steps:
                yield _row(key, steps, values)
            key, steps, values = (job_id, name), [], []
        steps.append(int(step))
        values.append(float("nan") if value is None else float(value))
    if key is not None and steps:
        yield _row(key, steps, values)


def _row(key: tuple[Any, str], steps: list[int], values: list[float]) -> dict[str, Any]:
    step_bytes, value_bytes = pack(steps, values)
    return {"job_id": key[0], "name": key[1], "first_step": steps[0], "last_step": steps[-1],
            "count": len(steps), "step_bytes": step_bytes, "value_bytes": value_bytes}


def _batches(rows: Iterator[dict[str, Any]], size: int = 500) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def downgrade() -> None:
    op.create_table(
        "metrics",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_metrics_job_id_jobs"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "name", "step", name=op.f("pk_metrics")),
        sqlite_with_rowid=False,
    )
    conn = op.get_bind()
    query = sa.select(_new.c.job_id, _new.c.name, _new.c.first_step, _new.c.last_step,
                      _new.c.step_bytes, _new.c.value_bytes)
    for job_id, name, first, last, step_bytes, value_bytes in conn.execute(query):
        steps, values = unpack(first, last, step_bytes, value_bytes)
        conn.execute(_old.insert(), [
            {"job_id": job_id, "name": name, "step": int(s), "value": None if v != v else v}
            for s, v in zip(steps.tolist(), values.tolist(), strict=True)])
    op.drop_table("metric_chunks")
