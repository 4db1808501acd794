"""Summary figures that need a job's whole stored history."""

from __future__ import annotations

import math
import uuid

import numpy as np
from sqlalchemy import Connection

from optimlab.service.db import metrics
from optimlab.service.db.packing import Steps, Values

TINY = 1e-300


def converged_at(conn: Connection, job_id: uuid.UUID, *, final: float | None,
                 tolerance: float) -> int | None:
    """The first step after which the loss stays within ``tolerance`` x |final| of ``final``.

    None when the final loss is not finite (a diverged run never converged). NaN counts as
    outside the margin.
    """
    if final is None or not math.isfinite(final):
        return None
    steps, values = metrics.load(conn, job_id, ["loss"])["loss"]
    return settled_at(steps, values, final=final, tolerance=tolerance)


def settled_at(steps: Steps, values: Values, *, final: float, tolerance: float) -> int:
    """converged_at over a loss history already read (``final`` finite)."""
    margin = tolerance * max(abs(final), TINY)
    with np.errstate(invalid="ignore"):
        inside = np.abs(values - final) <= margin
    outside = np.flatnonzero(~inside)
    return 0 if not outside.size else int(steps[outside[-1]]) + 1
