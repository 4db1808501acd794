"""The one executor: a task's job ids in, their rows claimed, the jobs trained, every
outcome stored.

A task names its jobs, never their specs: the spec is read back from each job row, which
stays the source of truth for status. A job sent alone runs on the engine's single-job
kernel (alone.py). The jobs of a sweep's fused task (all of them, or those a new attempt
could claim, or one whose group checkpoint it resumes) run as one fused run where
kernels.choose_kernel finds that exact (fused_run.py), and one by one otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import Engine

from optimlab.service.db import jobs, metrics
from optimlab.service.settings import Settings
from optimlab.worker.alone import run_claimed
from optimlab.worker.fused_checkpoints import fused_group
from optimlab.worker.fused_run import FusedResult, run_fused_task
from optimlab.worker.job_rows import Heartbeat, claim_jobs, store_lines
from optimlab.worker.limits import use_limits
from optimlab.worker.run_log import capturing

log = logging.getLogger(__name__)


def execute(job_ids: Sequence[str], *, db: Engine, settings: Settings, worker: str) -> None:
    with use_limits(settings.limits):  # each spec is checked as the API checked it
        # the points of a dead attempt stay until the run knows which step it resumes from
        claims = claim_jobs(job_ids, db=db, settings=settings, worker=worker,
                            keep_points=True)
        if not claims:
            return
        group = fused_group(db, job_ids, [str(claim.job_id) for claim in claims])
        # One heartbeat for every claimed job until the task ends: the probe takes seconds,
        # and jobs waiting for their turn to run alone must not look abandoned meanwhile.
        with Heartbeat(db, claims, every=settings.heartbeat_seconds):
            if len(group.ids) == 1:  # a job sent alone, of no fused task
                run_claimed(claims[0], db=db, settings=settings, worker=worker)
                return
            with capturing() as run_log:  # the probe's warnings are the run's too
                result = run_fused_task(group, claims, db=db, settings=settings,
                                        worker=worker, run_log=run_log)
                if result.left:
                    with db.begin() as conn:
                        store_lines(conn, result.left, run_log.take(last=True))
            _run_each_alone(result, db=db, settings=settings, worker=worker)


def _run_each_alone(result: FusedResult, *, db: Engine, settings: Settings,
                    worker: str) -> None:
    """The jobs a fused task could not run fused, one by one under the claims they hold;
    after a fused run that stopped part-way, each from step 0 again."""
    if result.left:
        log.debug("fused task of %d jobs runs them one by one: %s", len(result.left),
                  result.reason)
    for claim in result.left:
        if result.started:  # the same attempt starts again: its fused points go first
            with db.begin() as conn:
                if jobs.lock_for_write(conn, claim) is None:
                    continue
                metrics.delete_points(conn, claim.job_id)
        run_claimed(claim, db=db, settings=settings, worker=worker,
                    note={"fusion": {"fused_with": 0, "reason": result.reason}})
