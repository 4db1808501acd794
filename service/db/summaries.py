"""Summary figures that need a job's whole stored history."""

from __future__ import annotations

import math
import uuid

from sqlalchemy import Connection, func, or_, select

from optimlab.service.db.models import Metric

TINY = 1e-300


def converged_at(conn: Connection, job_id: uuid.UUID, *, final: float | None,
                 tolerance: float) -> int | None:
    """The first step after which the loss stays within ``tolerance`` x |final| of ``final``.

    One indexed scan in the database, for histories of any length. None when the final
    loss is not finite (a diverged run never converged).
    """
    if final is None or not math.isfinite(final):
        return None
    margin = tolerance * max(abs(final), TINY)
    value = Metric.value
    # NaN is NULL in SQLite; in PostgreSQL it compares above every number, so it is "outside".
    outside = or_(value.is_(None), func.abs(value - final) > margin)
    last_outside = conn.scalar(
        select(func.max(Metric.step)).where(Metric.job_id == job_id, Metric.name == "loss",
                                            outside))
    return 0 if last_outside is None else int(last_outside) + 1
