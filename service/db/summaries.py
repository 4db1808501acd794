"""Summary figures that need a job's whole stored history."""

from __future__ import annotations

import math

import numpy as np

from optimlab.service.db.packing import Steps, Values

TINY = 1e-300
# The default window: a tenth of the steps done, at least MIN_WINDOW; a run shorter than
# SHORT_RUN steps needs a quarter of its steps instead (and never fewer than two).
MIN_WINDOW = 10
SHORT_RUN = 40


def default_window(steps_done: int) -> int:
    """Steps the loss must stay settled for ``converged_at`` when the spec leaves it open."""
    if steps_done < SHORT_RUN:
        return max(2, -(-steps_done // 4))
    return max(MIN_WINDOW, -(-steps_done // 10))


def converged_at(loss: tuple[Steps, Values], *, final: float | None, tolerance: float,
                 window: int | None = None) -> int | None:
    """The first step from which the loss (its stored history, as ``metrics.load`` reads
    it) stays within ``tolerance`` x |final| of ``final`` to the end, provided that settled
    stretch spans at least ``window`` steps; else None.

    The window (default :func:`default_window` of the steps the history spans) is what
    tells a converged run from one still moving: the last point is always within any
    tolerance of itself, so without it a loss falling 10 % a step would "converge" at its
    last step. None when the final loss is not finite (a diverged run never converged);
    NaN counts as outside the margin.
    """
    steps, values = loss
    if final is None or not math.isfinite(final) or not steps.size:
        return None
    margin = tolerance * max(abs(final), TINY)
    with np.errstate(invalid="ignore"):
        inside = np.abs(values - final) <= margin
    outside = np.flatnonzero(~inside)
    first = int(steps[0]) if not outside.size else int(steps[outside[-1]]) + 1
    last = int(steps[-1])
    needed = default_window(last + 1) if window is None else window
    return first if last - first + 1 >= needed else None
