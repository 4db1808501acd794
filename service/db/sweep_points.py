"""A sweep's jobs as points: each job's axis values and summary, nothing else of it."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, select

from optimlab.service.db.models import Job


def sweep_points(conn: Connection, sweep_id: uuid.UUID
                 ) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """(sweep_point, summary) of every job of the sweep, in the order they were made."""
    query = (select(Job.sweep_point, Job.summary).where(Job.sweep_id == sweep_id)
             .order_by(Job.created_at, Job.id))
    return [(point or {}, summary) for point, summary in conn.execute(query)]
