"""The worker's side of checkpoints: how often a job checkpoints, where its states go, and
which state a new attempt of the job resumes from.

A job's states live in the checkpoint store under its id; only the newest
``settings.checkpoint_keep`` are kept. A new attempt resumes from the newest state whose
step the stored history reaches (a state past the stored points would leave a gap) and
that can be read; anything else (a damaged file, a store that fails) means starting from
step 0, with a log line, never a crash. Shared with fused runs: they checkpoint under
their own keys through the same classes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from optimlab.service.settings import Settings
from optimlab.worker.checkpoints import CheckpointStore
from optimlab.worker.engine.checkpoint import CheckpointPolicy, RunState
from optimlab.worker.spec import JobSpec
from optimlab.worker.spec_errors import SpecError

log = logging.getLogger(__name__)


def checkpoint_policy(spec: JobSpec, settings: Settings) -> CheckpointPolicy:
    """The spec's checkpoint_every and checkpoint_seconds; neither given: the service's
    default seconds. Never more often than the service's minimum seconds."""
    seconds = spec.checkpoint_seconds
    if seconds is None and spec.checkpoint_every is None:
        seconds = settings.checkpoint_seconds
    return CheckpointPolicy(every_steps=spec.checkpoint_every, every_seconds=seconds,
                            min_seconds=settings.checkpoint_min_seconds)


@dataclass
class StoreCheckpointer:
    """Saves a run's states under ``key``, keeping the newest ``keep``; ``extra`` travels in
    each state (``state["worker"]``) for the next attempt to read back. A save that fails
    is logged and the run goes on: a checkpoint is a convenience, the run's points are not."""

    store: CheckpointStore
    key: str
    policy: CheckpointPolicy
    keep: int
    extra: dict[str, Any] = field(default_factory=dict)
    saved: int | None = None  # the step of the last state saved

    def save(self, step: int, state: RunState) -> None:
        try:
            self.store.save(self.key, step, {**state, "worker": dict(self.extra)})
            self.saved = step
            self.store.prune(self.key, keep=self.keep)
        except Exception:
            log.warning("%s: checkpoint of step %d not saved", self.key, step, exc_info=True)


def readable_state(store: CheckpointStore, key: str, *,
                   at_most: int | None) -> tuple[int, RunState] | None:
    """The newest state of ``key`` at or before step ``at_most`` that can be read (None:
    none at all, or ``at_most`` None: nothing stored to go on from)."""
    if at_most is None:
        return None
    try:
        steps = store.steps(key)
    except Exception:
        log.warning("%s: the checkpoint store cannot be listed; starting from step 0", key,
                    exc_info=True)
        return None
    for step in reversed([s for s in steps if s <= at_most]):
        try:
            state = store.load(key, step)
        except Exception as exc:  # a damaged file: an older one may do
            log.warning("%s: checkpoint of step %d cannot be read (%s)", key, step,
                        str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__)
            continue
        if isinstance(state, dict):
            return step, state
    if steps:
        log.warning("%s: no readable checkpoint up to step %d; starting from step 0",
                    key, at_most)
    return None


@dataclass(frozen=True)
class ResumePlan:
    """Where a new attempt starts: after ``step`` (-1: from the start), from ``state``."""

    step: int
    state: RunState | None
    steps_recomputed: int  # over all attempts: steps stored before and computed again


def plan_resume(store: CheckpointStore, key: str, *, stored_through: int | None) -> ResumePlan:
    """``stored_through``: the highest step of the job's stored loss series (None: none)."""
    found = readable_state(store, key, at_most=stored_through)
    if found is None:
        recomputed = 0 if stored_through is None else stored_through + 1
        return ResumePlan(step=-1, state=None, steps_recomputed=recomputed)
    step, state = found
    before = int((state.get("worker") or {}).get("steps_recomputed", 0))
    assert stored_through is not None
    return ResumePlan(step=step, state=state, steps_recomputed=before + stored_through - step)


def initial_model(store: CheckpointStore, spec: JobSpec) -> dict[str, Any] | None:
    """The model ``state_dict`` that ``spec.init_from`` names (None without one); a
    SpecError naming init_from when that checkpoint is gone."""
    if spec.init_from is None:
        return None
    key, step = str(spec.init_from.job), spec.init_from.step
    try:
        state = store.load(key, step)
    except Exception as exc:
        raise SpecError(("init_from",), f"the checkpoint of job {key} at step {step} cannot "
                                        f"be read: {exc}") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        steps = ", ".join(map(str, store.steps(key))) or "none"
        raise SpecError(("init_from",), f"job {key} has no checkpoint at step {step} "
                                        f"(its checkpoints: {steps})")
    model: dict[str, Any] = state["model"]
    return model
