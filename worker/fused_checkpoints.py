"""Checkpoints of fused tasks: the group's key, which checkpoint a new attempt resumes from,
and the checkpointer that stores them once their points are stored.

A fused task's jobs are a group for as long as they live: the sweep's fusion plan keeps
the task's job ids as they were first sent (``sweeps.fused_tasks``), and the key is a
digest of them, so any later attempt at any subset of the group (a redelivered message,
the orphans requeued as one task) finds the same checkpoints. A job is named in them by
its position in that list (its *origin*, run_fused's ``origins``).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from optimlab.service.db import jobs, metrics, sweeps
from optimlab.service.settings import Settings
from optimlab.worker.checkpoints import CheckpointStore
from optimlab.worker.engine.checkpoint import CheckpointPolicy, RunState
from optimlab.worker.resumption import checkpoint_policy
from optimlab.worker.spec import JobSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FusedGroup:
    key: str  # the checkpoint store's key
    ids: list[str]  # the task's jobs as first sent
    origins: list[int]  # each claimed job's position in ``ids``


def fused_group(db: Engine, sent: Sequence[str],
                claimed: Sequence[str] | None = None) -> FusedGroup:
    """The group of a task's jobs (``sent``, of which ``claimed``, default all): their
    sweep's fused task, or the jobs sent where no plan holds them (a task sent by hand)."""
    sent = [str(uuid.UUID(job_id)) for job_id in sent]  # as the job rows spell them
    claimed = list(sent if claimed is None else claimed)
    with db.connect() as conn:
        tasks = sweeps.fused_tasks(conn, [uuid.UUID(sent[0])])
    ids = next(iter(tasks.values()), None)
    if ids is None or not set(sent) <= set(ids):
        ids = list(sent)
    digest = hashlib.sha256(",".join(ids).encode()).hexdigest()[:40]
    position = {job_id: k for k, job_id in enumerate(ids)}
    return FusedGroup(f"fused-{digest}", ids, [position[job_id] for job_id in claimed])


@dataclass(frozen=True)
class Start:
    """Where a new attempt starts: a checkpoint (``state``) or step 0 (None)."""

    state: RunState | None
    step: int  # the checkpoint's step (-1: none)
    last_steps: list[int]  # per claimed job: the last step stored before this attempt
    recomputed: list[int]  # per claimed job: steps computed again, this attempt included


def start(db: Engine, store: CheckpointStore, group: FusedGroup,
          claims: Sequence[jobs.Claim]) -> Start:
    """The newest checkpoint of the group that holds every claimed job and that the stored
    points of each one it ran reach (an older attempt's points may end before a newer
    checkpoint of an attempt that lost the jobs), else step 0."""
    with db.connect() as conn:
        stored = metrics.last_steps(conn, [claim.job_id for claim in claims])
    last = [stored[claim.job_id] for claim in claims]
    for step in reversed(store.steps(group.key)):
        state = store.load(group.key, step)
        if state is None or not _covers(state, group.origins, last, step):
            continue
        prior = state.get("worker", {}).get("recomputed", {})
        recomputed = [int(prior.get(origin, 0)) + max(0, stored_step - step)
                      for origin, stored_step in zip(group.origins, last, strict=True)]
        return Start(state, step, last, recomputed)
    return Start(None, -1, last, [stored_step + 1 for stored_step in last])


def _covers(state: RunState, origins: list[int], last: list[int], step: int) -> bool:
    entries = {int(entry["origin"]): entry for entry in state.get("jobs", [])}
    active = {int(origin) for origin in state.get("active", [])}
    for origin, stored_step in zip(origins, last, strict=True):
        entry = entries.get(origin)
        if entry is None:
            return False
        # a job still running at the checkpoint had stored every step up to it; one that
        # had ended, every step it ran
        reached = step if origin in active else int(entry["recorder"]["summary"]
                                                    ["steps_done"]) - 1
        if stored_step < reached:
            return False
    return True


def policy(spec: JobSpec, settings: Settings) -> CheckpointPolicy:
    """The spec's checkpoint interval (the jobs of a group share it), with the service's
    default and floor, as for a job run alone."""
    return checkpoint_policy(spec, settings)


class StoreCheckpointer:
    """Stores a fused run's states under its group's key, keeping the newest few. A state
    is stored only once the points up to its step are (``drain`` waits for the writer):
    a checkpoint never claims more than the database holds."""

    def __init__(self, store: CheckpointStore, group: FusedGroup, policy: CheckpointPolicy,
                 drain: Callable[[], None], *, keep: int, recomputed: list[int]) -> None:
        self.store = store
        self.group = group
        self.policy = policy
        self.drain = drain
        self.keep = keep
        self.recomputed = dict(zip(group.origins, recomputed, strict=True))

    def save(self, step: int, state: RunState) -> None:
        self.drain()
        state["worker"] = {"recomputed": dict(self.recomputed), "group": list(self.group.ids)}
        self.store.save(self.group.key, step, state)
        self.store.prune(self.group.key, keep=self.keep)


def forget_if_done(db: Engine, store: CheckpointStore, group: FusedGroup) -> None:
    """Delete the group's checkpoints once none of its jobs may run again."""
    with db.connect() as conn:
        found = jobs.get_jobs(conn, [uuid.UUID(job_id) for job_id in group.ids])
    if all(job.status in jobs.FINISHED for job in found.values()):
        store.delete(group.key)


def describe(start: Start, index: int, attempt: int) -> dict[str, Any]:
    """What job ``index``'s summary says of its attempts."""
    return {"attempts": attempt, "started_at_step": start.step + 1,
            "steps_recomputed": start.recomputed[index]}
