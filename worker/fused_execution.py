"""Run a fused task: claim its jobs, train them as one run, store each job's outcome.

Each job keeps its own row, attempt and metrics: the fused sink writes every job's batch
fenced by that job's attempt, in one transaction per flush. Whatever cannot fuse (a probe
finds the numbers would change, or the fused run fails) runs job by job instead, each
under the claim it already holds.

The run checkpoints its stacked state under its group's key (fused_checkpoints.py); a new
attempt at any of the group's jobs (Celery redelivering the task, or the orphans requeued
as one fused task) resumes from the newest checkpoint that every claimed job's stored
points reach, and each job's first write replaces what the dead attempt stored after it.
"""

from __future__ import annotations

import logging
import queue
import threading
import traceback
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, Engine

from optimlab.service.db import job_logs, jobs, metrics
from optimlab.service.db.dataset_source import SqlDatasetSource
from optimlab.service.settings import Settings
from optimlab.worker.checkpoints import CheckpointStore
from optimlab.worker.db_retry import Outbox
from optimlab.worker.engine import TrainingSummary
from optimlab.worker.engine.fused.loop import run_fused
from optimlab.worker.engine.kernels import FusedKernel, choose_kernel
from optimlab.worker.engine.sink import JobUpdate, SeriesColumns, point_count
from optimlab.worker.execution import (
    WALL_TIME,
    Heartbeat,
    JobResult,
    backoff_of,
    claim_jobs,
    finish_all,
    finite_json,
    over_wall_time,
    run_claimed,
    stopped_for_wall_time,
    store_lines,
    stored_before,
)
from optimlab.worker.fused_checkpoints import (
    StoreCheckpointer,
    describe,
    forget_if_done,
    fused_group,
    policy,
    start,
)
from optimlab.worker.run_log import Pending, RunLog, capturing, rows_for
from optimlab.worker.spec import JobSpec
from optimlab.worker.usage import ProcessMeter

log = logging.getLogger(__name__)

# A JobUpdate as the writer thread gets it: the summary as a dict of that moment.
_Stored = tuple[int, SeriesColumns, dict[str, Any]]


def execute_fused(job_ids: Sequence[str], *, engine: Engine, settings: Settings,
                  worker: str) -> None:
    # the points of a dead attempt stay until this run knows which it resumes from
    claims = claim_jobs(job_ids, engine=engine, settings=settings, worker=worker,
                        keep_points=True)
    if not claims:
        return
    # One heartbeat for every claimed job until the task ends: the probe takes seconds, and
    # jobs waiting for their turn to run alone must not look abandoned meanwhile.
    with Heartbeat(engine, claims, every=settings.heartbeat_seconds):
        with capturing() as run_log:  # the probe's warnings are the run's too
            left, reason = _fused_run(job_ids, claims, engine=engine, settings=settings,
                                      worker=worker, run_log=run_log)
            if left:
                with engine.begin() as conn:
                    store_lines(conn, left, run_log.take(last=True))
        if left:
            log.debug("fused task of %d jobs runs them one by one: %s", len(left), reason)
        _run_alone(left, engine=engine, settings=settings, worker=worker, reason=reason)


def _fused_run(sent: Sequence[str], claims: list[jobs.Claim], *, engine: Engine,
               settings: Settings, worker: str, run_log: RunLog
               ) -> tuple[list[jobs.Claim], str]:
    """Train the jobs as one run (from the group's checkpoint where one serves) and store
    their outcomes; or return the jobs still held that must run one by one instead, and
    why."""
    group = fused_group(engine, sent, [str(claim.job_id) for claim in claims])
    store = CheckpointStore(settings.checkpoints)
    begin = start(engine, store, group, claims)
    plan, reason = _fusion_plan(claims, engine, resuming=begin.state is not None)
    if plan is None:
        return claims, reason or "not fusable"
    specs, kernel = plan
    mode = kernel.mode
    where = "" if begin.state is None else f" at step {begin.step + 1}"
    for claim in claims:
        run_log.note(log, claim.job_id, "job %s: run %d starts%s on %s, fused with %d other "
                     "jobs", claim.job_id, claim.attempt, where, worker, len(claims) - 1)
    notes = [{"resume": describe(begin, index, claim.attempt)}
             for index, claim in enumerate(claims)]
    sink = SqlFusedSink(engine, claims, run_log, settings=settings,
                        replace_after=begin.step, notes=notes,
                        max_seconds=settings.max_job_seconds)
    checkpointer = StoreCheckpointer(store, group, policy(specs[0], settings), sink.drain,
                                     keep=settings.checkpoint_keep,
                                     recomputed=begin.recomputed)
    try:
        with ProcessMeter() as meter:
            try:
                results = run_fused(specs, sink, flush_seconds=settings.flush_seconds,
                                    source=SqlDatasetSource(engine), mode=mode, built=kernel.built,
                                    checkpointer=checkpointer, resume=begin.state,
                                    origins=group.origins)
            finally:
                sink.close()
    except Exception as exc:  # the jobs are still good alone: run them so
        log.exception("fused run failed; its jobs run one by one")
        detail = "".join(traceback.format_exception_only(exc)).strip()
        return _left(claims, sink), f"the fused run failed: {detail}"
    extra = {"fusion": {"fused_with": len(claims) - 1, "mode": mode, "reason": None},
             "process": meter.figures(shared_by=len(claims))}
    done = [_outcome(claim, summary, {**extra, **notes[index]}, sink.timed_out.get(index))
            for index, (claim, summary) in enumerate(zip(claims, results, strict=True))
            if index not in sink.superseded]
    finish_all(engine, done, run_log=run_log, backoff=backoff_of(settings))
    forget_if_done(engine, store, group)
    return [], ""


def _outcome(claim: jobs.Claim, summary: TrainingSummary, extra: dict[str, Any],
             timed_out: str | None) -> JobResult:
    """A fused job's outcome: succeeded, or failed past its wall time (points kept)."""
    if timed_out is None:
        return claim, jobs.SUCCEEDED, {**finite_json(summary.as_dict()), **extra}, None
    stopped_for_wall_time(summary)
    return claim, jobs.FAILED, {**finite_json(summary.as_dict()), **extra}, timed_out


def _left(claims: list[jobs.Claim], sink: SqlFusedSink) -> list[jobs.Claim]:
    """The jobs the fused run still holds."""
    return [claim for index, claim in enumerate(claims) if index not in sink.superseded]


def _fusion_plan(claims: list[jobs.Claim], engine: Engine, *, resuming: bool = False
                 ) -> tuple[tuple[list[JobSpec], FusedKernel] | None, str | None]:
    """The specs and how they run fused (kernels.choose_kernel), or why they run one by one.
    A single job left of a group runs fused too when it resumes the group's checkpoint."""
    if len(claims) < 2 and not resuming:
        return None, "only one job of the task was left to run"
    try:
        specs = [JobSpec.model_validate(claim.spec) for claim in claims]
    except ValidationError:
        return None, "a spec no longer validates"
    kernel, reason = choose_kernel(specs, source=SqlDatasetSource(engine), resuming=resuming)
    return (None, reason) if kernel is None else ((specs, kernel), None)


def _run_alone(claims: list[jobs.Claim], *, engine: Engine, settings: Settings, worker: str,
               reason: str) -> None:
    for claim in claims:
        with engine.begin() as conn:  # start again from step 0, under the same attempt
            if jobs.lock_for_write(conn, claim) is None:
                continue
            metrics.delete_points(conn, claim.job_id)
        run_claimed(claim, engine=engine, settings=settings, worker=worker,
                    note={"fusion": {"fused_with": 0, "reason": reason}},
                    beat=False)  # the task's heartbeat beats every claimed job


class SqlFusedSink:
    """Writes every job's batch in one transaction, each fenced by its own attempt, with a
    ``wall_time`` point at the batch's last step and the log lines captured meanwhile.
    A job's first batch first deletes what earlier attempts stored after step
    ``replace_after`` (all of it: -1), in the same transaction: a reader sees the dead
    attempt's points until the same values replace them, never a gap. ``notes`` join each
    job's summary.

    The writes run on a thread of their own, so the next steps train while a batch is
    stored (the database driver releases the GIL); ``write`` answers with what the last
    stored batch said of each job, so a cancel is seen one flush later. ``close`` waits for
    every batch to be stored and raises what a write raised.

    While the database is away, the writer keeps batches in an outbox (db_retry.Outbox);
    past ``Settings.unstored_points_limit`` points it blocks until they are stored, and
    with it, once the queue is full, training. Each batch is stored exactly once.
    """

    def __init__(self, engine: Engine, claims: list[jobs.Claim],
                 run_log: RunLog | None = None, *, settings: Settings | None = None,
                 replace_after: int = -1,
                 notes: Sequence[dict[str, Any]] | None = None,
                 max_seconds: float | None = None) -> None:
        settings = settings or Settings()
        self.outbox: Outbox[tuple[list[_Stored], list[Pending]], None] = Outbox(
            self._store_retried, size=_points, limit=settings.unstored_points_limit,
            backoff=backoff_of(settings), what=f"fused run of {len(claims)} jobs: metrics")
        self.engine = engine
        self.claims = claims
        self.run_log = run_log
        self.replace_after: list[int | None] = [replace_after] * len(claims)
        self.notes = list(notes) if notes is not None else [{} for _ in claims]
        self.wall_steps = [-1] * len(claims)  # the step of each job's last wall_time point
        self.superseded: set[int] = set()
        self.going_on = [True] * len(claims)
        self.max_seconds = max_seconds  # each job's wall-time limit, checked at each write
        self.timed_out: dict[int, str] = {}  # why a job was stopped for its wall time
        self.failure: BaseException | None = None
        self.batches: queue.Queue[list[_Stored] | None] = queue.Queue(maxsize=2)
        self.thread = threading.Thread(target=self._run, name="fused-writer", daemon=True)
        self.thread.start()

    def write(self, updates: Sequence[JobUpdate]) -> list[bool]:
        self._raise_failure()
        # The summaries are taken now: the run keeps changing them while the batch waits.
        self.batches.put([(i, points, {**summary.as_dict(), **self.notes[i]})
                          for i, points, summary in updates])
        for index, _, summary in updates:
            if index not in self.timed_out and (
                    why := over_wall_time(self.max_seconds, summary)) is not None:
                self.timed_out[index] = why
        # a job past its wall time stops as for a cancel; it fails, its points kept
        return [self.going_on[index] and index not in self.timed_out
                for index, _, _ in updates]

    def drain(self) -> None:
        """Wait until every batch written so far is stored; raise what a write raised."""
        self.batches.join()
        self._raise_failure()

    def close(self) -> None:
        if self.thread.is_alive():
            self.batches.put(None)
            self.thread.join()
        self._raise_failure()

    def _raise_failure(self) -> None:
        if self.failure is not None:
            raise RuntimeError(f"storing a fused batch failed: {self.failure}") from self.failure

    def _run(self) -> None:
        while (updates := self.batches.get()) is not None:
            try:
                if self.failure is None:  # else drain: the run is about to see the failure
                    for index, points, summary in updates:
                        self._add_wall_time(index, points, summary)
                    lines = self.run_log.take() if self.run_log is not None else []
                    self.outbox.put((updates, lines))
            except BaseException as exc:  # handed to the training thread
                self.failure = exc
            finally:
                self.batches.task_done()
        try:
            self.outbox.flush()  # the run ended: what waits for the database, stored
        except BaseException as exc:
            self.failure = exc
        finally:
            self.batches.task_done()

    def _store_retried(self, batch: tuple[list[_Stored], list[Pending]], retried: bool) -> None:
        self._store(*batch, verify=retried)

    def _store(self, updates: list[_Stored], lines: list[Pending] | None = None, *,
               verify: bool = False) -> None:
        """``verify``: an earlier try may have committed unheard of; store the batch unless
        it already is (checked under the jobs' row locks, which that commit held)."""
        claims = [self.claims[index] for index, _, _ in updates]
        if lines is None:
            lines = self.run_log.take() if self.run_log is not None else []
        with self.engine.begin() as conn:
            statuses = jobs.lock_many_for_write(conn, claims)
            held = [(claim, points, summary) for claim, (_, points, summary), status
                    in zip(claims, updates, statuses, strict=True) if status is not None]
            # The replacement first: a dead attempt's chunks never pass for this batch's.
            replaced = [(index, after) for (index, _, _), status in zip(
                updates, statuses, strict=True)
                if status is not None and (after := self.replace_after[index]) is not None]
            for index, after in replaced:
                metrics.delete_after(conn, self.claims[index].job_id, after)
            if verify and _stored_before(conn, held):
                held = []
            metrics.write_many(conn, [(claim.job_id, points) for claim, points, _ in held])
            jobs.save_many_progress(conn, [(claim, finite_json(summary))
                                           for claim, _, summary in held])
            job_logs.write_lines(conn, rows_for(lines, [(claim.job_id, claim.attempt)
                                                        for claim, _, _ in held]))
        for index, _ in replaced:
            self.replace_after[index] = None
        for (index, _, _), status in zip(updates, statuses, strict=True):
            if status is None:
                self.superseded.add(index)
            self.going_on[index] = status == jobs.RUNNING

    def _add_wall_time(self, index: int, points: SeriesColumns, summary: dict[str, Any]) -> None:
        last = max((int(steps[-1]) for steps, _ in points.values() if len(steps)), default=-1)
        if last > self.wall_steps[index]:
            points[WALL_TIME] = ([last], [summary["wall_seconds"]])
            self.wall_steps[index] = last


def _points(batch: tuple[list[_Stored], list[Pending]]) -> int:
    return sum(point_count(points) for _, points, _ in batch[0])


def _stored_before(conn: Connection, held: list[tuple[jobs.Claim, SeriesColumns, dict[str, Any]]]
                   ) -> bool:
    """Whether the batch's one transaction went through: one of its chunks tells."""
    for claim, points, _ in held:
        if point_count(points):
            return stored_before(conn, claim.job_id, points)
    return False
