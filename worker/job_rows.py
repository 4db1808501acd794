"""A run's bookkeeping on its job rows: the claim that fences it, the heartbeat that shows
it alive, and the outcome that ends it (with the log lines no metrics write took)."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine

from optimlab.service.db import job_logs, jobs, metrics, summaries
from optimlab.service.db.holders import this_process
from optimlab.service.db.models import utcnow
from optimlab.service.settings import Settings
from optimlab.worker.db_retry import Backoff, retrying
from optimlab.worker.outcomes import Outcome
from optimlab.worker.run_log import Pending, RunLog, rows_for

# The executor's lines (stored with each run's log) keep its name, whichever of its
# modules writes them.
log = logging.getLogger("optimlab.worker.execution")


def claim_jobs(job_ids: Sequence[str], *, db: Engine, settings: Settings,
               worker: str, keep_points: bool = False) -> list[jobs.Claim]:
    """Claim each job that is free for a new run, in the given order, in one transaction:
    the queued ones in one statement, the rest (runs whose process died or that stopped
    beating, jobs out of attempts) one by one. The claims name this process as holder.
    ``keep_points``: earlier runs' points stay, for a run that resumes to replace."""
    stale_before = utcnow() - timedelta(seconds=settings.stale_after_seconds)
    holder = this_process()
    alive_before = utcnow() - timedelta(seconds=settings.outage_grace_seconds)
    wanted = [uuid.UUID(job_id) for job_id in job_ids]
    with db.begin() as conn:
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


# (the run, its status, its summary, its error)
JobResult = tuple[jobs.Claim, str, dict[str, Any] | None, str | None]


def finish_all(db: Engine, outcomes: Sequence[JobResult], *,
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
        _store_outcomes(db, outcomes, lines)
    else:
        retrying(lambda: _store_outcomes(db, outcomes, lines), backoff=backoff,
                 what=f"jobs {[str(claim.job_id) for claim, _, _, _ in outcomes]}: outcome")


def _store_outcomes(db: Engine, outcomes: Sequence[JobResult], lines: list[Pending]) -> None:
    # Safe to try again after a commit whose acknowledgement was lost: the updates are
    # conditional on the job still running under this attempt, and so are the lines.
    with db.begin() as conn:
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


class Heartbeat:
    """Refreshes the jobs' heartbeats from a thread, so a long single step is not taken for
    death (a fused run beats for all its jobs in one transaction)."""

    def __init__(self, db: Engine, claims: list[jobs.Claim], *, every: float) -> None:
        self.db = db
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
                with self.db.begin() as conn:
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
