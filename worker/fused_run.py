"""Train a fused task's jobs as one run (the engine's fused kernel, in the mode
kernels.choose_kernel found exact) and store each job's outcome.

Each job keeps its own row, attempt and metrics: the worker's sink (sql_sink.py) writes
every job's batch fenced by that job's attempt, in one transaction per flush. The run
checkpoints its stacked state under its group's key (fused_checkpoints.py); a new attempt
at any of the group's jobs resumes from the newest checkpoint that every claimed job's
stored points reach, and each job's first write replaces what the dead attempt stored
after it. What cannot run fused goes back to the executor (execution.py) to run alone.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine

from optimlab.service.db import jobs
from optimlab.service.db.dataset_source import SqlDatasetSource
from optimlab.service.settings import Settings
from optimlab.worker.alone import stopped_for_wall_time
from optimlab.worker.checkpoints import CheckpointStore
from optimlab.worker.engine import TrainingSummary
from optimlab.worker.engine.fused.loop import run_fused
from optimlab.worker.engine.kernels import FusedKernel, choose_kernel
from optimlab.worker.fused_checkpoints import (
    FusedGroup,
    StoreCheckpointer,
    describe,
    forget_if_done,
    policy,
    start,
)
from optimlab.worker.job_rows import JobResult, finish_all
from optimlab.worker.run_log import RunLog
from optimlab.worker.spec import JobSpec
from optimlab.worker.sql_sink import SqlJobsSink, backoff_of, finite_json
from optimlab.worker.usage import ProcessMeter

# The executor's lines (stored with each run's log) keep its name, whichever of its
# modules writes them.
log = logging.getLogger("optimlab.worker.execution")


@dataclass(frozen=True)
class FusedResult:
    left: list[jobs.Claim]  # the jobs still held that must run alone
    reason: str  # why they must
    started: bool  # the fused run trained (and may have stored points) before it stopped


def run_fused_task(group: FusedGroup, claims: list[jobs.Claim], *, db: Engine,
                   settings: Settings, worker: str, run_log: RunLog) -> FusedResult:
    """Train a fused task's claimed jobs as one run (from the group's checkpoint where one
    serves) and store their outcomes; or say which jobs it still holds must run one by one
    instead, and why."""
    store = CheckpointStore(settings.checkpoints)
    begin = start(db, store, group, claims)
    plan, reason = _fusion_plan(claims, db, resuming=begin.state is not None)
    if plan is None:
        return FusedResult(claims, reason or "not fusable", started=False)
    specs, kernel = plan
    mode = kernel.mode
    where = "" if begin.state is None else f" at step {begin.step + 1}"
    for claim in claims:
        run_log.note(log, claim.job_id, "job %s: run %d starts%s on %s, fused with %d other "
                     "jobs", claim.job_id, claim.attempt, where, worker, len(claims) - 1)
    notes = [{"resume": describe(begin, index, claim.attempt)}
             for index, claim in enumerate(claims)]
    sink = SqlJobsSink(db, claims, run_log, settings=settings, replace_after=begin.step,
                       notes=notes, max_seconds=settings.max_job_seconds)
    checkpointer = StoreCheckpointer(store, group, policy(specs[0], settings), sink.drain,
                                     keep=settings.checkpoint_keep,
                                     recomputed=begin.recomputed)
    try:
        with ProcessMeter() as meter:
            try:
                results = run_fused(specs, sink, flush_seconds=settings.flush_seconds,
                                    source=SqlDatasetSource(db), mode=mode, built=kernel.built,
                                    checkpointer=checkpointer, resume=begin.state,
                                    origins=group.origins)
            finally:
                sink.close()
    except Exception as exc:  # the jobs are still good alone: run them so
        log.exception("fused run failed; its jobs run one by one")
        detail = "".join(traceback.format_exception_only(exc)).strip()
        return FusedResult(_left(claims, sink), f"the fused run failed: {detail}", started=True)
    extra = {"fusion": {"fused_with": len(claims) - 1, "mode": mode, "reason": None},
             "process": meter.figures(shared_by=len(claims))}
    done = [_outcome(claim, summary, {**extra, **notes[index]}, sink.timed_out.get(index))
            for index, (claim, summary) in enumerate(zip(claims, results, strict=True))
            if index not in sink.superseded]
    finish_all(db, done, run_log=run_log, backoff=backoff_of(settings))
    forget_if_done(db, store, group)
    return FusedResult([], "", started=True)


def _outcome(claim: jobs.Claim, summary: TrainingSummary, extra: dict[str, Any],
             timed_out: str | None) -> JobResult:
    """A fused job's outcome: succeeded, or failed past its wall time (points kept)."""
    if timed_out is None:
        return claim, jobs.SUCCEEDED, {**finite_json(summary.as_dict()), **extra}, None
    stopped_for_wall_time(summary)
    return claim, jobs.FAILED, {**finite_json(summary.as_dict()), **extra}, timed_out


def _left(claims: list[jobs.Claim], sink: SqlJobsSink) -> list[jobs.Claim]:
    """The jobs the fused run still holds."""
    return [claim for index, claim in enumerate(claims) if index not in sink.superseded]


def _fusion_plan(claims: list[jobs.Claim], db: Engine, *, resuming: bool = False
                 ) -> tuple[tuple[list[JobSpec], FusedKernel] | None, str | None]:
    """The specs and how they run fused (kernels.choose_kernel), or why they run one by one.
    A single job left of a group runs fused too when it resumes the group's checkpoint."""
    if len(claims) < 2 and not resuming:
        return None, "only one job of the task was left to run"
    try:
        specs = [JobSpec.model_validate(claim.spec) for claim in claims]
    except ValidationError:
        return None, "a spec no longer validates"
    kernel, reason = choose_kernel(specs, source=SqlDatasetSource(db), resuming=resuming)
    return (None, reason) if kernel is None else ((specs, kernel), None)
