"""Per-owner quotas, checked when jobs are submitted (a job, a rerun, a whole sweep).

Why at submit, not when a worker claims a job: a worker that found an owner over quota
would have to leave the job queued and have it sent again later, which needs a re-send
loop in the worker and the reconciler; a refusal at submit needs neither, and the client
hears about it at once, with the quota and the limit. So ``quota_running_jobs`` bounds
what an owner may start while it already has that many running: a submission is refused
then; jobs queued before keep their turn. ``quota_queued_jobs`` bounds the waiting ones (a
sweep that would go over is refused whole), and ``quota_stored_points`` refuses new work
once an owner's jobs hold that many metric points (403: only deleting jobs frees them).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Connection, func, select, text

from optimlab.service.db import jobs
from optimlab.service.db.models import Job, MetricChunk
from optimlab.service.jobs.callers import Caller
from optimlab.service.jobs.errors import QuotaExceeded
from optimlab.service.settings import Settings


def check_submit(conn: Connection, settings: Settings, caller: Caller, *, new_jobs: int) -> None:
    """Raise QuotaExceeded if ``new_jobs`` more queued jobs would pass a quota of the
    caller's owner (with auth off: of the jobs without owner); 0 or None is unlimited."""
    if not (settings.quota_running_jobs or settings.quota_queued_jobs
            or settings.quota_stored_points):
        return
    _serialize(conn, caller.owner)
    owned = Job.owner.is_(None) if caller.owner is None else Job.owner == caller.owner
    who = "local jobs" if caller.owner is None else f"owner {caller.owner!r}"
    limit = settings.quota_running_jobs
    if limit:
        running = _count(conn, owned, jobs.RUNNING)
        if running >= limit:
            raise QuotaExceeded(
                f"quota quota_running_jobs: {who} has {running} running jobs, the limit is "
                f"{limit}; submit again when some have finished",
                quota="quota_running_jobs", limit=limit, status=429)
    limit = settings.quota_queued_jobs
    if limit:
        queued = _count(conn, owned, jobs.QUEUED)
        if queued + new_jobs > limit:
            raise QuotaExceeded(
                f"quota quota_queued_jobs: {who} has {queued} queued jobs and this adds "
                f"{new_jobs}; the limit is {limit}", quota="quota_queued_jobs", limit=limit,
                status=429)
    limit = settings.quota_stored_points
    if limit:
        points = conn.scalar(select(func.coalesce(func.sum(MetricChunk.count), 0))
                             .join(Job, Job.id == MetricChunk.job_id).where(owned))
        if int(points or 0) >= limit:
            raise QuotaExceeded(
                f"quota quota_stored_points: {who} stores {points} metric points, the limit "
                f"is {limit}; delete finished jobs to submit more",
                quota="quota_stored_points", limit=limit, status=403)


def _serialize(conn: Connection, owner: str | None) -> None:
    """One submission of an owner at a time until its transaction ends, so two at once
    cannot both pass a quota one of them fills (SQLite serializes writers by itself)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                     {"key": f"optimlab-quota:{owner}"})


def _count(conn: Connection, owned: ColumnElement[bool], status: str) -> int:
    return int(conn.scalar(select(func.count()).select_from(Job)
                           .where(owned, Job.status == status)) or 0)
