"""Job holders: which process holds a job's running attempt (host, pid, start time).

A redelivered task for a job whose holder died on the same host takes the job over at
once, without waiting for its heartbeat to go stale; the start time guards against a
reused pid.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


COLUMNS = ("holder_host", "holder_pid", "holder_started")


def upgrade() -> None:
    op.add_column("jobs", sa.Column("holder_host", sa.String(length=255), nullable=True))
    op.add_column("jobs", sa.Column("holder_pid", sa.Integer(), nullable=True))
    op.add_column("jobs", sa.Column("holder_started", sa.Float(), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE (SQLite >= 3.35 has DROP COLUMN): a batch-mode copy would drop and
    # recreate the jobs table, and with foreign keys on, its metrics and logs with it.
    for column in reversed(COLUMNS):
        op.execute(f"ALTER TABLE jobs DROP COLUMN {column}")
