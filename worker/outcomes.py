"""How a run ends, as its summary records it (``summary.outcome``). A StrEnum: the stored
summaries, the API and queries on ``summary.outcome`` keep the plain strings."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    RUNNING = "running"  # not ended yet (a running job's progress)
    COMPLETED = "completed"  # every step run
    DIVERGED = "diverged"  # a non-finite (or past divergence_threshold) loss
    REACHED_TARGET = "reached_target"  # stop.loss_below
    CONVERGED = "converged"  # stop.converge_tol held for converge_steps
    STOPPED = "stopped"  # patience ran out, max_seconds, or the service's wall-time limit
    CANCELLED = "cancelled"  # the sink said stop (a cancel, a superseded attempt)
