"""API keys, and an owner on jobs, sweeps and data sets.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWNED = ("jobs", "sweeps", "datasets")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("admin", sa.Boolean(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    # Rows from before have no owner: with auth on, only admin keys see them. A plain
    # ADD/DROP COLUMN, not a batch copy: SQLite would copy jobs into a new table and drop
    # the old one, and the drop cascades to every job's points and logs.
    for table in OWNED:
        op.add_column(table, sa.Column("owner", sa.String(length=200), nullable=True))
        op.create_index(op.f(f"ix_{table}_owner"), table, ["owner"])


def downgrade() -> None:
    for table in OWNED:
        op.drop_index(op.f(f"ix_{table}_owner"), table_name=table)
        if op.get_bind().dialect.name == "sqlite":  # SQLite >= 3.35 drops a column in place
            op.execute(f"ALTER TABLE {table} DROP COLUMN owner")
        else:
            op.drop_column(table, "owner")
    op.drop_table("api_keys")
