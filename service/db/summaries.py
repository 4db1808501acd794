"""Summary figures that need a job's whole stored history."""

from __future__ import annotations

import math

import numpy as np

from optimlab.service.db.packing import Steps, Values

TINY = 1e-300


def converged_at(loss: tuple[Steps, Values], *, final: float | None,
                 tolerance: float) -> int | None:
    """The first step after which the loss (its stored history, as ``metrics.load`` reads
    it) stays within ``tolerance`` x |final| of ``final``.

    None when the final loss is not finite (a diverged run never converged). NaN counts as
    outside the margin.
    """
    if final is None or not math.isfinite(final):
        return None
    steps, values = loss
    margin = tolerance * max(abs(final), TINY)
    with np.errstate(invalid="ignore"):
        inside = np.abs(values - final) <= margin
    outside = np.flatnonzero(~inside)
    return 0 if not outside.size else int(steps[outside[-1]]) + 1
