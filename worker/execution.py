"""Run one job: claim its row, train it with the engine, store metrics and the outcome.

Called by the Celery task with a job id (never a payload): the spec is read
back from the job row, which stays the source of truth for status.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import traceback
import uuid
from collections.abc import Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any

import torch
from pydantic import ValidationError
from sqlalchemy import Connection, Engine

from optimlab.service.db import job_logs, jobs, metrics, summaries
from optimlab.service.db.dataset_source import SqlDatasetSource
from optimlab.service.db.holders import this_process
from optimlab.service.db.models import utcnow
from optimlab.service.settings import Settings
from optimlab.worker.checkpoints import CheckpointStore
from optimlab.worker.db_retry import Backoff, Outbox, retrying
from optimlab.worker.engine import SpecError, TrainingSummary, run_training
from optimlab.worker.engine.devices import resolve_device
from optimlab.worker.engine.resume import ResumeError
from optimlab.worker.engine.sink import JobUpdate, SeriesColumns, point_count
from optimlab.worker.limits import use_limits
from optimlab.worker.outcomes import Outcome
from optimlab.worker.resumption import (
    StoreCheckpointer,
    checkpoint_policy,
    initial_model,
    plan_resume,
)
from optimlab.worker.run_log import Pending, RunLog, capturing, rows_for
from optimlab.worker.spec import JobSpec
from optimlab.worker.usage import ProcessMeter

log = logging.getLogger(__name__)

# Seconds since the run started, one point per stored batch at its last step: written by the
# worker's sinks (not by the engine, whose histories stay the same from run to run).
WALL_TIME = "wall_time"


def execute_job(job_id: str, *, engine: Engine, settings: Settings, worker: str) -> None:
    claim = claim_job(job_id, engine=engine, settings=settings, worker=worker)
    if claim is not None:
        with use_limits(settings.limits):  # the spec is checked as the API checked it
            run_claimed(claim, engine=engine, settings=settings, worker=worker)


def claim_job(job_id: str, *, engine: Engine, settings: Settings,
              worker: str) -> jobs.Claim | None:
    """Take the job for a new run (queued, or running with a stale heartbeat), or None.
    Earlier runs' points stay: the run replaces those past its checkpoint (run_claimed)."""
    claims = claim_jobs([job_id], engine=engine, settings=settings, worker=worker,
                        keep_points=True)
    return claims[0] if claims else None


def claim_jobs(job_ids: Sequence[str], *, engine: Engine, settings: Settings,
               worker: str, keep_points: bool = False) -> list[jobs.Claim]:
    """Claim each job that is free for a new run, in the given order, in one transaction:
    the queued ones in one statement, the rest (runs whose process died or that stopped
    beating, jobs out of attempts) one by one. The claims name this process as holder.
    ``keep_points``: earlier runs' points stay, for a run that resumes to replace."""
    stale_before = utcnow() - timedelta(seconds=settings.stale_after_seconds)
    holder = this_process()
    alive_before = utcnow() - timedelta(seconds=settings.outage_grace_seconds)
    wanted = [uuid.UUID(job_id) for job_id in job_ids]
    with engine.begin() as conn:
        found = {claim.job_id: claim for claim in jobs.claim_queued(
            conn, wanted, worker=worker, max_attempts=settings.max_attempts, holder=holder,
            keep_points=keep_points)}
        for job_id in wanted:
            if job_id not in found and (claim := jobs.claim_job(
                    conn, job_id, worker=worker, stale_before=stale_before,
                    max_attempts=settings.max_attempts, holder=holder,
                    alive_before=alive_before, keep_points=keep_points)) is not None:
                found[job_id] = claim
    for job_id in wanted:
        if job_id not in found:
            log.debug("job %s: nothing to run (finished, cancelled, or running in a live "
                      "process)", job_id)
    return [found[job_id] for job_id in wanted if job_id in found]


def run_claimed(claim: jobs.Claim, *, engine: Engine, settings: Settings, worker: str,
                note: dict[str, Any] | None = None, beat: bool = True) -> None:
    """Train a claimed job alone and store its outcome (``note`` joins its summary), with
    the run's log lines and what it cost the process. ``beat=False``: the caller's own
    heartbeat covers the job."""
    with capturing() as run_log:
        run_log.note(log, claim.job_id, "job %s: run %d starts on %s", claim.job_id,
                     claim.attempt, worker)
        sink = SqlMetricSink(engine, claim, run_log, settings=settings,
                             max_seconds=settings.max_job_seconds)
        heartbeat = Heartbeat(engine, [claim], every=settings.heartbeat_seconds) if beat \
            else contextlib.nullcontext()
        with ProcessMeter(cuda=_cuda_device(claim.spec)) as meter, heartbeat:
            status, summary, error = _train(claim, sink, settings)
            try:  # what waited for the database is stored before the outcome
                sink.flush()
                if not sink.superseded:
                    sink.replace_now()  # a run that stored nothing still replaces old points
            except Exception as exc:  # not the database away (that is waited for)
                log.exception("job %s: storing its last metrics failed", claim.job_id)
                status, error = jobs.FAILED, f"storing metrics failed: {exc}"
        if sink.superseded:
            log.warning("job %s: run %d was superseded (or the job deleted); its result is "
                        "dropped", claim.job_id, claim.attempt)
            return
        if summary is not None:
            summary.update(note or {})
            summary["process"] = meter.figures()
        finish_all(engine, [(claim, status, summary, error)], run_log=run_log,
                   backoff=backoff_of(settings))


def _cuda_device(spec: dict[str, Any]) -> torch.device | None:
    """The CUDA device the job will run on, or None (CPU, or a spec that will fail)."""
    try:
        device = resolve_device(JobSpec.model_validate(spec).device)
    except Exception:
        return None
    return device if device.type == "cuda" else None


# (the run, its status, its summary, its error)
JobResult = tuple[jobs.Claim, str, dict[str, Any] | None, str | None]


def backoff_of(settings: Settings) -> Backoff:
    return Backoff(first=settings.db_retry_first_seconds, cap=settings.db_retry_max_seconds)


def finish_all(engine: Engine, outcomes: Sequence[JobResult], *,
               run_log: RunLog | None = None, backoff: Backoff | None = None) -> None:
    """Store runs' outcomes in one transaction, with ``converged_at`` read off their stored
    loss histories (in one query). The end line of each run, and the lines of ``run_log`` no
    write took yet, are stored with the outcomes. With ``backoff``, a database that is away
    is waited for: the run's end is recorded when it is back (a run that trained through an
    outage must not be rerun for want of its last write)."""
    for claim, status, summary, error in outcomes:
        line = ("job %s: run %d ends %s", claim.job_id, claim.attempt,
                _ending(status, summary, error))
        if run_log is not None:
            run_log.note(log, claim.job_id, *line)
        else:
            log.info(*line)
    lines = run_log.take(last=True) if run_log is not None else []  # once, for every try
    if backoff is None:
        _store_outcomes(engine, outcomes, lines)
    else:
        retrying(lambda: _store_outcomes(engine, outcomes, lines), backoff=backoff,
                 what=f"jobs {[str(claim.job_id) for claim, _, _, _ in outcomes]}: outcome")


def _store_outcomes(engine: Engine, outcomes: Sequence[JobResult], lines: list[Pending]) -> None:
    # Safe to try again after a commit whose acknowledgement was lost: the updates are
    # conditional on the job still running under this attempt, and so are the lines.
    with engine.begin() as conn:
        store_lines(conn, [claim for claim, _, _, _ in outcomes], lines)
        losses = metrics.load_jobs(conn, [claim.job_id for claim, _, summary, _ in outcomes
                                          if summary is not None], "loss")
        for claim, _, summary, _ in outcomes:
            if summary is not None:
                summary["converged_at"] = summaries.converged_at(
                    losses[claim.job_id], final=summary.get("final_loss"),
                    tolerance=_tolerance(claim), window=_window(claim))
        jobs.finish_jobs(conn, [(claim, status, summary)
                                for claim, status, summary, error in outcomes if error is None])
        for claim, status, summary, error in outcomes:
            if error is not None:
                jobs.finish_job(conn, claim, status=status, summary=summary, error=error)


def _ending(status: str, summary: dict[str, Any] | None, error: str | None) -> str:
    """``succeeded (completed after 20 steps)``, ``cancelled (after 12 steps)``, ``failed: ...``"""
    if error is not None:
        return f"{status}: {(error.splitlines() or [''])[0][:300]}"
    if summary is None:
        return status
    outcome, steps = summary.get("outcome"), summary.get("steps_done")
    if outcome == Outcome.CANCELLED:  # the run stopped for a cancel: the job stays cancelled
        return f"cancelled (after {steps} steps)"
    return f"{status} ({outcome} after {steps} steps)"


def store_lines(conn: Connection, claims: Sequence[jobs.Claim], pending: list[Pending]) -> None:
    """Store captured lines for the runs that still hold their jobs (a deleted job or a
    superseded run gets none), their rows locked first."""
    if not pending or not claims:
        return
    held = [(claim.job_id, claim.attempt) for claim, status in
            zip(claims, jobs.lock_many_for_write(conn, list(claims)), strict=True)
            if status is not None]
    job_logs.write_lines(conn, rows_for(pending, held))


def _tolerance(claim: jobs.Claim) -> float:
    return float(claim.spec.get("summary", {}).get("tolerance", 0.01))


def _window(claim: jobs.Claim) -> int | None:
    window = claim.spec.get("summary", {}).get("converge_window")
    return None if window is None else int(window)


def _train(claim: jobs.Claim, sink: SqlMetricSink,
           settings: Settings) -> tuple[str, dict[str, Any] | None, str | None]:
    try:
        spec = JobSpec.model_validate(claim.spec)
        summary = _resume_or_start(claim, spec, sink, settings)
    except (SpecError, ValidationError) as exc:
        return jobs.FAILED, sink.last_summary, f"invalid spec: {exc}"
    except Exception as exc:  # a failed job is a result; the worker must go on
        log.exception("job %s failed", claim.job_id)
        detail = "".join(traceback.format_exception_only(exc)).strip()
        return jobs.FAILED, sink.last_summary, detail
    if sink.timed_out is not None:
        stopped_for_wall_time(summary)
        return jobs.FAILED, finite_json({**summary.as_dict(), **sink.extra}), sink.timed_out
    return jobs.SUCCEEDED, finite_json({**summary.as_dict(), **sink.extra}), None


def _resume_or_start(claim: jobs.Claim, spec: JobSpec, sink: SqlMetricSink,
                     settings: Settings) -> TrainingSummary:
    """Train from the newest usable checkpoint of the job (an earlier attempt's), else from
    step 0; the sink replaces the points stored past that step in its first write."""
    store = CheckpointStore(settings.checkpoints)
    key = str(claim.job_id)
    with sink.engine.connect() as conn:
        stored_through = metrics.last_step(conn, claim.job_id, "loss")
    plan = plan_resume(store, key, stored_through=stored_through)
    checkpointer = StoreCheckpointer(store, key, checkpoint_policy(spec, settings),
                                     keep=settings.checkpoint_keep,
                                     extra={"steps_recomputed": plan.steps_recomputed})
    sink.begin(after=plan.step, extra={"attempts": claim.attempt,
                                       "steps_recomputed": plan.steps_recomputed})
    source = SqlDatasetSource(sink.engine)
    if plan.state is not None:
        try:
            line = ("job %s: run %d resumes from the checkpoint of step %d (%d steps "
                    "recomputed)", claim.job_id, claim.attempt, plan.step, plan.steps_recomputed)
            if sink.run_log is not None:
                sink.run_log.note(log, claim.job_id, *line)
            else:
                log.info(*line)
            return run_training(spec, sink, flush_seconds=settings.flush_seconds,
                                source=source, checkpointer=checkpointer, resume=plan.state)
        except ResumeError as exc:
            log.warning("job %s: checkpoint of step %d not resumed (%s); starting from "
                        "step 0", claim.job_id, plan.step, exc)
            recomputed = 0 if stored_through is None else stored_through + 1
            checkpointer.extra["steps_recomputed"] = recomputed
            sink.begin(after=-1, extra={"attempts": claim.attempt,
                                        "steps_recomputed": recomputed})
    return run_training(spec, sink, flush_seconds=settings.flush_seconds, source=source,
                        checkpointer=checkpointer, init_model=initial_model(store, spec))


# A batch as the single-job sink stores it: points, progress, log lines.
_Batch = tuple[SeriesColumns, dict[str, Any], list[Pending]]


class SqlMetricSink:
    """Writes each batch (and a ``wall_time`` point at its last step, and the log lines
    captured meanwhile), fenced by the run's attempt, and reports cancellation back.

    While the database is away, batches wait in an outbox (db_retry.Outbox) and training
    goes on; past ``Settings.unstored_points_limit`` points, ``write`` blocks until they are
    stored. Each batch is stored exactly once.
    """

    def __init__(self, engine: Engine, claim: jobs.Claim, run_log: RunLog | None = None, *,
                 settings: Settings | None = None,
                 max_seconds: float | None = None) -> None:
        self.engine = engine
        self.claim = claim
        self.run_log = run_log
        self.superseded = False
        self.max_seconds = max_seconds  # the run's wall-time limit, checked at each write
        self.timed_out: str | None = None  # why the run was stopped for its wall time
        self.last_summary: dict[str, Any] | None = None
        self.wall_step = -1  # the step of the last wall_time point
        settings = settings or Settings()
        self.outbox: Outbox[_Batch, str | None] = Outbox(
            self._store, size=lambda batch: point_count(batch[0]),
            limit=settings.unstored_points_limit, backoff=backoff_of(settings),
            what=f"job {claim.job_id}: metrics")
        self.replace_after: int | None = -1  # the first write deletes points past it
        self.extra: dict[str, Any] = {}  # joins every summary stored (attempts, ...)

    def begin(self, *, after: int, extra: dict[str, Any]) -> None:
        """The run goes on after step ``after`` (-1: from the start): its first write
        replaces every point stored past it (by a dead attempt)."""
        self.replace_after, self.wall_step, self.extra = after, after, dict(extra)

    def write(self, updates: Sequence[JobUpdate]) -> list[bool]:
        (_, columns, summary), = updates  # a run of one job
        self.last_summary = finite_json({**summary.as_dict(), **self.extra})
        last = max((int(steps[-1]) for steps, _ in columns.values() if len(steps)), default=-1)
        if last > self.wall_step:
            columns = {**columns, WALL_TIME: ([last], [summary.wall_seconds])}
            self.wall_step = last
        lines = self.run_log.take() if self.run_log is not None else []
        status = self.outbox.put((columns, self.last_summary, lines))
        if self.superseded:
            return [False]
        if (why := over_wall_time(self.max_seconds, summary)) is not None:
            self.timed_out = why
            return [False]  # the engine stops as for a cancel; the job fails, points kept
        return [status is None or status == jobs.RUNNING]  # None: not stored yet, train on

    def flush(self) -> None:
        """Store what waits in the outbox, waiting for the database if it is away."""
        self.outbox.flush()

    def _store(self, batch: _Batch, retried: bool) -> str | None:
        points, progress, lines = batch
        with self.engine.begin() as conn:
            status = store_batch(conn, self.claim, points, progress, lines, verify=retried,
                                 replace_after=self.replace_after)
        if status is None:
            self.superseded = True
        else:
            self.replace_after = None
        return status

    def replace_now(self) -> None:
        """Replace the old points now if no write did (a run that failed before its first)."""
        if self.replace_after is None:
            return
        with self.engine.begin() as conn:
            if jobs.lock_for_write(conn, self.claim) is None:
                self.superseded = True
                return
            metrics.delete_after(conn, self.claim.job_id, self.replace_after)
        self.replace_after = None


def over_wall_time(limit: float | None, summary: TrainingSummary) -> str | None:
    """Why the run must stop for the service's wall-time limit (OPTIMLAB_MAX_JOB_SECONDS),
    or None."""
    if limit is None or summary.wall_seconds <= limit:
        return None
    return (f"stopped after {summary.wall_seconds:.1f} s at step {summary.steps_done}: over "
            f"the wall-time limit of {limit:g} s per run (OPTIMLAB_MAX_JOB_SECONDS); the "
            "metrics stored so far are kept")


def stopped_for_wall_time(summary: TrainingSummary) -> None:
    """The ended run's summary says why: the engine saw only its sink asking it to stop."""
    summary.outcome, summary.stop_reason = Outcome.STOPPED, "wall-time limit"


def store_batch(conn: Connection, claim: jobs.Claim, columns: SeriesColumns,
                progress: dict[str, Any], lines: Sequence[Pending] = (), *,
                verify: bool = False, replace_after: int | None = None) -> str | None:
    """Store a run's points (by series), progress and log lines, fenced by its attempt; the
    job's status, or None (nothing stored) when the run no longer holds the job.

    ``replace_after``: first delete the job's points past this step (the run's first write
    replaces what a dead attempt stored after the checkpoint it resumes from).
    ``verify``: an earlier try may have committed without our hearing of it; the batch is
    stored unless it already is (checked under the job's row lock, which that commit held;
    after the replacement, so a dead attempt's points never pass for ours).
    """
    status = jobs.lock_for_write(conn, claim)
    if status is not None and replace_after is not None:
        metrics.delete_after(conn, claim.job_id, replace_after)
    if status is not None and not (verify and stored_before(conn, claim.job_id, columns)):
        metrics.write_columns(conn, claim.job_id, columns)
        jobs.save_progress(conn, claim, progress)
        job_logs.write_lines(conn, rows_for(lines, [(claim.job_id, claim.attempt)]))
    return status


def stored_before(conn: Connection, job_id: uuid.UUID, columns: SeriesColumns) -> bool:
    """Whether a batch's transaction went through: one of its chunks tells."""
    for name, (steps, _) in columns.items():
        if len(steps):
            return metrics.has_chunk(conn, job_id, name, int(steps[0]))
    return False


class Heartbeat:
    """Refreshes the jobs' heartbeats from a thread, so a long single step is not taken for
    death (a fused run beats for all its jobs in one transaction)."""

    def __init__(self, engine: Engine, claims: list[jobs.Claim], *, every: float) -> None:
        self.engine = engine
        # In id order, as the writes lock the rows (jobs.lock_many_for_write): a beat and a
        # fused flush that locked two jobs' rows in opposite orders would deadlock.
        self.claims = sorted(claims, key=lambda claim: claim.job_id)
        self.every = every
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="job-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stopped.set()
        self.thread.join()

    def _run(self) -> None:
        failures = 0
        while not self.stopped.wait(self.every):
            try:
                with self.engine.begin() as conn:
                    for claim in self.claims:
                        jobs.heartbeat(conn, claim)
            except Exception:  # a missed beat is retried; the run goes on
                failures += 1
                # While the database is away: one traceback, then a line every tenth beat.
                if failures == 1 or failures % 10 == 0:
                    log.warning("jobs %s: heartbeat failed (%d in a row)",
                                [str(c.job_id) for c in self.claims], failures,
                                exc_info=failures == 1)
                continue
            if failures:
                log.warning("jobs %s: heartbeat back after %d failures",
                            [str(c.job_id) for c in self.claims], failures)
                failures = 0


def finite_json(value: Any) -> Any:
    """JSON has no NaN or infinity (PostgreSQL refuses them): store null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value
