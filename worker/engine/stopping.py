"""When a run ends before its last step, and why: the rules of ``spec.stop`` and
``diverge_factor``, with the little state they keep (one instance per job)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from optimlab.worker.outcomes import Outcome
from optimlab.worker.spec import JobSpec

Ending = tuple[Outcome, str | None]  # (outcome, reason)


def ending_state(ending: Ending | None) -> list[str | None] | None:
    """An ending as a checkpoint keeps it: plain strings (``weights_only`` loads no class
    of ours)."""
    return None if ending is None else [str(ending[0]), ending[1]]


def ending_from_state(saved: list[Any] | None) -> Ending | None:
    return None if saved is None else (Outcome(saved[0]), saved[1])


@dataclass
class StopRules:
    spec: JobSpec
    initial_loss: float | None = None
    best_val: float = math.inf
    bad_evaluations: int = 0
    calm_steps: int = 0

    def state_dict(self) -> dict[str, Any]:
        return {"initial_loss": self.initial_loss, "best_val": self.best_val,
                "bad_evaluations": self.bad_evaluations, "calm_steps": self.calm_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.initial_loss = state["initial_loss"]
        self.best_val = float(state["best_val"])
        self.bad_evaluations = int(state["bad_evaluations"])
        self.calm_steps = int(state["calm_steps"])

    @property
    def watches_loss(self) -> bool:
        """Whether ``after_loss`` can end a finite loss's run (a fused loop skips it if not)."""
        stop = self.spec.stop
        return self.spec.diverge_factor is not None or (
            stop is not None and stop.loss_below is not None)

    @property
    def watches_steps(self) -> bool:
        """Whether ``after_step`` can end the run at all."""
        stop = self.spec.stop
        return stop is not None and (stop.patience is not None or stop.converge_tol is not None
                                     or stop.max_seconds is not None)

    def after_loss(self, step: int, value: float) -> Ending | None:
        """Checked on the step's loss, before the update: divergence, then the target."""
        if step == 0:
            self.initial_loss = value
        factor = self.spec.diverge_factor
        if not math.isfinite(value) or (
                factor is not None and self.initial_loss is not None and self.initial_loss > 0
                and value > factor * self.initial_loss):
            return (Outcome.DIVERGED, "non-finite loss" if not math.isfinite(value)
                    else f"loss above {factor} x the initial loss")
        stop = self.spec.stop
        if stop is not None and stop.loss_below is not None and value < stop.loss_below:
            return (Outcome.REACHED_TARGET, f"loss below {stop.loss_below}")
        return None

    def loss_bounds(self) -> tuple[float, float]:
        """(low, high): past step 0, ``after_loss`` ends a run on a finite loss only when it
        is below low or above high (a fused loop compares all jobs' losses at once)."""
        stop = self.spec.stop
        low = -math.inf if stop is None or stop.loss_below is None else stop.loss_below
        factor, initial = self.spec.diverge_factor, self.initial_loss
        high = math.inf if factor is None or initial is None or not initial > 0 \
            else factor * initial
        return low, high

    def after_step(self, val_loss: float | None, update_norm: float,
                   elapsed: float) -> Ending | None:
        """Checked after the update and its evaluation: patience, convergence, the clock
        (each rule keeps counting only while the ones before it let the run go on)."""
        return (self._patience_ran_out(val_loss) or self._converged(update_norm)
                or self._timed_out(elapsed))

    def _patience_ran_out(self, val_loss: float | None) -> Ending | None:
        stop = self.spec.stop
        if stop is None or stop.patience is None or val_loss is None:
            return None
        if val_loss < self.best_val - stop.min_delta:
            self.best_val, self.bad_evaluations = val_loss, 0
            return None
        self.bad_evaluations += 1
        if self.bad_evaluations >= stop.patience:
            return (Outcome.STOPPED, f"val_loss did not improve in {stop.patience} evaluations")
        return None

    def _converged(self, update_norm: float) -> Ending | None:
        stop = self.spec.stop
        if stop is None or stop.converge_tol is None:
            return None
        self.calm_steps = self.calm_steps + 1 if update_norm <= stop.converge_tol else 0
        if self.calm_steps >= stop.converge_steps:
            return (Outcome.CONVERGED, f"update_norm at most {stop.converge_tol} for "
                                 f"{stop.converge_steps} steps")
        return None

    def _timed_out(self, elapsed: float) -> Ending | None:
        stop = self.spec.stop
        if stop is not None and stop.max_seconds is not None and elapsed > stop.max_seconds:
            return (Outcome.STOPPED, f"max_seconds ({stop.max_seconds}) reached")
        return None
