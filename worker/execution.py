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
from optimlab.service.db.models import utcnow
from optimlab.service.jobs.datasets import SqlDatasetSource
from optimlab.service.settings import Settings
from optimlab.worker.engine import MetricPoint, SpecError, TrainingSummary, run_training
from optimlab.worker.engine.devices import resolve_device
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
        run_claimed(claim, engine=engine, settings=settings, worker=worker)


def claim_job(job_id: str, *, engine: Engine, settings: Settings,
              worker: str) -> jobs.Claim | None:
    """Take the job for a new run (queued, or running with a stale heartbeat), or None."""
    claims = claim_jobs([job_id], engine=engine, settings=settings, worker=worker)
    return claims[0] if claims else None


def claim_jobs(job_ids: Sequence[str], *, engine: Engine, settings: Settings,
               worker: str, keep_points: bool = False) -> list[jobs.Claim]:
    """Claim each job that is free for a new run, in the given order, in one transaction:
    the queued ones in one statement, the rest (stale runs, jobs out of attempts) one by
    one. ``keep_points``: see jobs.claim_job."""
    stale_before = utcnow() - timedelta(seconds=settings.stale_after_seconds)
    wanted = [uuid.UUID(job_id) for job_id in job_ids]
    with engine.begin() as conn:
        found = {claim.job_id: claim for claim in jobs.claim_queued(
            conn, wanted, worker=worker, max_attempts=settings.max_attempts,
            keep_points=keep_points)}
        for job_id in wanted:
            if job_id not in found and (claim := jobs.claim_job(
                    conn, job_id, worker=worker, stale_before=stale_before,
                    max_attempts=settings.max_attempts, keep_points=keep_points)) is not None:
                found[job_id] = claim
    for job_id in wanted:
        if job_id not in found:
            log.debug("job %s: nothing to run (finished, cancelled or running elsewhere)", job_id)
    return [found[job_id] for job_id in wanted if job_id in found]


def run_claimed(claim: jobs.Claim, *, engine: Engine, settings: Settings, worker: str,
                note: dict[str, Any] | None = None, beat: bool = True) -> None:
    """Train a claimed job alone and store its outcome (``note`` joins its summary), with
    the run's log lines and what it cost the process. ``beat=False``: the caller's own
    heartbeat covers the job."""
    with capturing() as run_log:
        run_log.note(log, claim.job_id, "job %s: run %d starts on %s", claim.job_id,
                     claim.attempt, worker)
        sink = SqlMetricSink(engine, claim, run_log)
        heartbeat = Heartbeat(engine, [claim], every=settings.heartbeat_seconds) if beat \
            else contextlib.nullcontext()
        with ProcessMeter(cuda=_cuda_device(claim.spec)) as meter, heartbeat:
            status, summary, error = _train(claim, sink, settings)
        if sink.superseded:
            log.warning("job %s: run %d was superseded (or the job deleted); its result is "
                        "dropped", claim.job_id, claim.attempt)
            return
        if summary is not None:
            summary.update(note or {})
            summary["process"] = meter.figures()
        finish_all(engine, [(claim, status, summary, error)], run_log=run_log)


def _cuda_device(spec: dict[str, Any]) -> torch.device | None:
    """The CUDA device the job will run on, or None (CPU, or a spec that will fail)."""
    try:
        device = resolve_device(JobSpec.model_validate(spec).device)
    except Exception:
        return None
    return device if device.type == "cuda" else None


# (the run, its status, its summary, its error)
Outcome = tuple[jobs.Claim, str, dict[str, Any] | None, str | None]


def finish_all(engine: Engine, outcomes: Sequence[Outcome], *,
               run_log: RunLog | None = None) -> None:
    """Store runs' outcomes in one transaction, with ``converged_at`` read off their stored
    loss histories (in one query). The end line of each run, and the lines of ``run_log`` no
    write took yet, are stored with the outcomes."""
    for claim, status, summary, error in outcomes:
        line = ("job %s: run %d ends %s", claim.job_id, claim.attempt,
                _ending(status, summary, error))
        if run_log is not None:
            run_log.note(log, claim.job_id, *line)
        else:
            log.info(*line)
    with engine.begin() as conn:
        if run_log is not None:
            store_lines(conn, [claim for claim, _, _, _ in outcomes], run_log.take(last=True))
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
    if outcome == "cancelled":  # the run stopped for a cancel: the job stays cancelled
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
        summary = run_training(spec, sink, flush_seconds=settings.flush_seconds,
                               source=SqlDatasetSource(sink.engine))
    except (SpecError, ValidationError) as exc:
        return jobs.FAILED, sink.last_summary, f"invalid spec: {exc}"
    except Exception as exc:  # a failed job is a result; the worker must go on
        log.exception("job %s failed", claim.job_id)
        detail = "".join(traceback.format_exception_only(exc)).strip()
        return jobs.FAILED, sink.last_summary, detail
    return jobs.SUCCEEDED, finite_json(summary.as_dict()), None


class SqlMetricSink:
    """Writes each batch (and a ``wall_time`` point at its last step, and the log lines
    captured meanwhile), fenced by the run's attempt, and reports cancellation back."""

    def __init__(self, engine: Engine, claim: jobs.Claim, run_log: RunLog | None = None) -> None:
        self.engine = engine
        self.claim = claim
        self.run_log = run_log
        self.superseded = False
        self.last_summary: dict[str, Any] | None = None
        self.wall_step = -1  # the step of the last wall_time point

    def write(self, points: list[MetricPoint], summary: TrainingSummary) -> bool:
        self.last_summary = finite_json(summary.as_dict())
        if points and (last := max(step for step, _, _ in points)) > self.wall_step:
            points = [*points, (last, WALL_TIME, summary.wall_seconds)]
            self.wall_step = last
        lines = self.run_log.take() if self.run_log is not None else []
        with self.engine.begin() as conn:
            status = store_batch(conn, self.claim, points, self.last_summary, lines)
        if status is None:
            self.superseded = True
        return status == jobs.RUNNING


def store_batch(conn: Connection, claim: jobs.Claim, points: list[MetricPoint],
                progress: dict[str, Any], lines: Sequence[Pending] = ()) -> str | None:
    """Store a run's points, progress and log lines, fenced by its attempt; the job's
    status, or None (nothing stored) when the run no longer holds the job."""
    status = jobs.lock_for_write(conn, claim)
    if status is not None:
        metrics.write_points(conn, claim.job_id, points)
        jobs.save_progress(conn, claim, progress)
        job_logs.write_lines(conn, rows_for(lines, [(claim.job_id, claim.attempt)]))
    return status


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
        while not self.stopped.wait(self.every):
            try:
                with self.engine.begin() as conn:
                    for claim in self.claims:
                        jobs.heartbeat(conn, claim)
            except Exception:  # a missed beat is retried; the run goes on
                log.warning("jobs %s: heartbeat failed", [str(c.job_id) for c in self.claims],
                            exc_info=True)


def finite_json(value: Any) -> Any:
    """JSON has no NaN or infinity (PostgreSQL refuses them): store null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value
