"""Queries on the jobs table. Every status change is one conditional UPDATE.

The job row is the source of truth: a broker message only says "look at job
X". Runs are fenced by ``attempt``: a worker claims a job by incrementing it,
and every later write of that run names the attempt it holds, so a duplicate
or superseded run can never overwrite a newer one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Connection,
    Select,
    Uuid,
    and_,
    bindparam,
    delete,
    insert,
    or_,
    select,
    update,
)

from optimlab.service.db import job_logs, metrics
from optimlab.service.db.holders import Holder, holder_gone
from optimlab.service.db.models import Job, JobTag, utcnow

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "queued", "running", "succeeded", "failed", "cancelled")
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
FINISHED = (SUCCEEDED, FAILED, CANCELLED)


@dataclass(frozen=True)
class Claim:
    job_id: uuid.UUID
    attempt: int
    spec: dict[str, Any]


def insert_job(conn: Connection, *, name: str, spec: dict[str, Any], queue: str,
               sweep_id: uuid.UUID | None = None,
               sweep_point: dict[str, Any] | None = None, owner: str | None = None) -> Job:
    job_id = uuid.uuid4()
    now = utcnow()
    conn.execute(insert(Job).values(
        id=job_id, name=name, status=QUEUED, spec=spec, queue=queue, created_at=now, attempt=0,
        sweep_id=sweep_id, sweep_point=sweep_point, owner=owner))
    _insert_tags(conn, job_id, spec.get("tags") or [])
    return get_job(conn, job_id)  # type: ignore[return-value]


def _insert_tags(conn: Connection, job_id: uuid.UUID, tags: list[str]) -> None:
    if tags:
        conn.execute(insert(JobTag), [{"job_id": job_id, "tag": tag} for tag in sorted(set(tags))])


def get_job(conn: Connection, job_id: uuid.UUID, *, lock: bool = False) -> Job | None:
    """The job, or None; ``lock`` holds its row until the transaction ends."""
    query = select(Job.__table__).where(Job.id == job_id)
    if lock:
        query = _locking(conn, query, [job_id])
    row = conn.execute(query).one_or_none()
    return None if row is None else Job(**row._mapping)


def get_jobs(conn: Connection, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, Job]:
    """The jobs of these ids that exist, in one query."""
    rows = conn.execute(select(Job.__table__).where(Job.id.in_(job_ids))).all() if job_ids else []
    return {row.id: Job(**row._mapping) for row in rows}


def relabel_job(conn: Connection, job_id: uuid.UUID, *, name: str,
                spec: dict[str, Any]) -> None:
    """Set the job's name and spec (whose ``name`` and ``tags`` changed) and its job_tags rows
    to the spec's tags, in the caller's transaction so the two stay consistent."""
    conn.execute(update(Job).where(Job.id == job_id).values(name=name, spec=spec))
    conn.execute(delete(JobTag).where(JobTag.job_id == job_id))
    _insert_tags(conn, job_id, spec.get("tags") or [])


def delete_job(conn: Connection, job_id: uuid.UUID) -> None:
    """Delete the job with its points, tags and log lines (not waiting for the foreign keys'
    cascade: a SQLite connection may have them off)."""
    metrics.delete_points(conn, job_id)
    job_logs.delete_lines(conn, [job_id])
    conn.execute(delete(JobTag).where(JobTag.job_id == job_id))
    conn.execute(delete(Job).where(Job.id == job_id))


def list_jobs(conn: Connection, *, status: str | None, limit: int,
              after: tuple[datetime, uuid.UUID] | None) -> list[Job]:
    """Newest first; ``after`` is the (created_at, id) of the last job of the previous page."""
    query = select(Job.__table__).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Job.status == status)
    if after is not None:
        created, last_id = after
        query = query.where(or_(Job.created_at < created,
                                and_(Job.created_at == created, Job.id < last_id)))
    return [Job(**row._mapping) for row in conn.execute(query)]


def _holding(holder: Holder | None) -> dict[str, Any]:
    """The holder columns of a claim by ``holder``."""
    if holder is None:
        return {"holder_host": None, "holder_pid": None, "holder_started": None}
    return {"holder_host": holder.host, "holder_pid": holder.pid,
            "holder_started": holder.started}


def abandoned(job: Job, *, stale_before: datetime, alive_before: datetime | None = None) -> bool:
    """A running job whose run is lost: its holder process died on this host (at once, a
    fresh heartbeat notwithstanding), or, where that cannot be told, it stopped beating.

    A holder alive on this host is only cut off from the database; past ``alive_before``
    without a beat it is taken for lost all the same (a run that ended without recording
    its end must not hold its job for ever).
    """
    gone = holder_gone(job.holder_host, job.holder_pid, job.holder_started)
    if gone:
        return True
    before = stale_before if gone is None else alive_before
    return before is not None and (job.heartbeat_at is None or job.heartbeat_at < before)


def claim_job(conn: Connection, job_id: uuid.UUID, *, worker: str, stale_before: datetime,
              max_attempts: int, holder: Holder | None = None,
              alive_before: datetime | None = None, keep_points: bool = False) -> Claim | None:
    """Take a queued job (or a running one whose run is lost, :func:`abandoned`) for a new
    run, held by ``holder`` (this process).

    Returns None when the job is not to be run by this caller: finished, cancelled,
    unknown, or running elsewhere with a live holder (a duplicate delivery). A job
    that has already started ``max_attempts`` runs fails instead: it keeps killing workers.
    ``keep_points``: the points of earlier runs stay; the new run replaces those past the
    checkpoint it resumes from in its first write.
    """
    job = get_job(conn, job_id)
    if job is None:
        return None
    claimable = job.status == QUEUED or (
        job.status == RUNNING and abandoned(job, stale_before=stale_before,
                                            alive_before=alive_before))
    if not claimable:
        return None
    if job.attempt >= max_attempts:
        fail_job(conn, job_id, f"gave up after {job.attempt} runs that did not finish "
                               "(the worker was lost each time)")
        return None
    now = utcnow()
    result = conn.execute(
        update(Job).where(Job.id == job_id, Job.attempt == job.attempt, Job.status == job.status)
        .values(status=RUNNING, attempt=job.attempt + 1, worker=worker, started_at=now,
                heartbeat_at=now, error=None, summary=None, **_holding(holder)))
    if result.rowcount != 1:
        return None  # another worker claimed it between our read and write
    if not keep_points:  # a new run from step 0: whatever an abandoned run stored goes
        metrics.delete_points(conn, job_id)
    return Claim(job_id=job_id, attempt=job.attempt + 1, spec=job.spec)


def claim_queued(conn: Connection, job_ids: list[uuid.UUID], *, worker: str,
                 max_attempts: int, holder: Holder | None = None,
                 keep_points: bool = False) -> list[Claim]:
    """:func:`claim_job` for the queued jobs among ``job_ids``, in two statements (a fused
    task claims a hundred at once); the others are left to :func:`claim_job`."""
    now = utcnow()
    claimed = conn.execute(
        update(Job).where(Job.id.in_(job_ids), Job.status == QUEUED,
                          Job.attempt < max_attempts)
        .values(status=RUNNING, attempt=Job.attempt + 1, worker=worker, started_at=now,
                heartbeat_at=now, error=None, summary=None, **_holding(holder))
        .returning(Job.id, Job.attempt, Job.spec)).all()
    if claimed and not keep_points:  # a queued job may hold points of a run handed back
        metrics.delete_jobs_points(conn, [row.id for row in claimed])
    return [Claim(job_id=row.id, attempt=row.attempt, spec=row.spec) for row in claimed]


def heartbeat(conn: Connection, claim: Claim) -> str | None:
    """Refresh a running job's heartbeat; None when the run no longer holds a running job."""
    result = conn.execute(
        update(Job).where(Job.id == claim.job_id, Job.attempt == claim.attempt,
                          Job.status == RUNNING)
        .values(heartbeat_at=utcnow()).returning(Job.status))
    row = result.one_or_none()
    return None if row is None else str(row.status)


def lock_for_write(conn: Connection, claim: Claim) -> str | None:
    """Lock the job row for a metrics write; return its status, None if the run lost the job.

    A run holds its job while the attempt is its own and the job is running (or was
    cancelled during the run); a job handed back to the queue belongs to the next run.
    """
    query = _locking(conn, select(Job.status, Job.attempt).where(Job.id == claim.job_id),
                     [claim.job_id])
    row = conn.execute(query).one_or_none()
    if row is None or row.attempt != claim.attempt or row.status not in (RUNNING, CANCELLED):
        return None
    return str(row.status)


def lock_many_for_write(conn: Connection, claims: list[Claim]) -> list[str | None]:
    """:func:`lock_for_write` for several runs in one statement, in the claims' order."""
    ids = [claim.job_id for claim in claims]
    # in id order, so two writers cannot deadlock
    query = _locking(conn, select(Job.id, Job.status, Job.attempt).where(Job.id.in_(ids))
                     .order_by(Job.id), ids)
    rows = {row.id: row for row in conn.execute(query)}
    statuses: list[str | None] = []
    for claim in claims:
        row = rows.get(claim.job_id)
        held = row is not None and row.attempt == claim.attempt and \
            row.status in (RUNNING, CANCELLED)
        statuses.append(str(row.status) if held and row is not None else None)
    return statuses


_Query = TypeVar("_Query", bound=Select[*tuple[Any, ...]])


def _locking(conn: Connection, query: _Query, job_ids: list[uuid.UUID]) -> _Query:
    """``query`` made to lock the jobs' rows until the transaction ends, so that what it
    reads (the run still holds the job, the job still exists) holds for the writes after it.

    PostgreSQL locks the rows read. SQLite has one writer at a time but reads outside it: a
    no-op UPDATE first takes the database's write lock, so no other writer (a claim, a
    delete) commits between the read and this transaction's writes.
    """
    if conn.dialect.name == "postgresql":
        return query.with_for_update()
    conn.execute(update(Job).where(Job.id.in_(job_ids)).values(attempt=Job.attempt))
    return query


def save_progress(conn: Connection, claim: Claim, summary: dict[str, Any]) -> None:
    save_many_progress(conn, [(claim, summary)])


def save_many_progress(conn: Connection, progress: list[tuple[Claim, dict[str, Any]]]) -> None:
    """Each run's summary so far, and a heartbeat, in one executemany."""
    if not progress:
        return
    statement = (update(Job)
                 .where(Job.id == bindparam("claimed_id", type_=Uuid()),
                        Job.attempt == bindparam("claimed_attempt"))
                 .values(summary=bindparam("progress", type_=JSON()), heartbeat_at=utcnow()))
    conn.execute(statement, [{"claimed_id": claim.job_id, "claimed_attempt": claim.attempt,
                              "progress": summary} for claim, summary in progress])


def finish_jobs(conn: Connection, outcomes: list[tuple[Claim, str, dict[str, Any] | None]]
                ) -> None:
    """:func:`finish_job` without errors for several runs: two executemany statements."""
    if not outcomes:
        return
    now = utcnow()
    rows = [{"claimed_id": claim.job_id, "claimed_attempt": claim.attempt,
             "final_status": status, "final_summary": summary}
            for claim, status, summary in outcomes]
    this_run = and_(Job.id == bindparam("claimed_id", type_=Uuid()),
                    Job.attempt == bindparam("claimed_attempt"))
    summary = bindparam("final_summary", type_=Job.__table__.c.summary.type)
    conn.execute(update(Job).where(this_run, Job.status == RUNNING)
                 .values(status=bindparam("final_status"), finished_at=now, summary=summary,
                         heartbeat_at=None), rows)
    conn.execute(update(Job).where(this_run, Job.status == CANCELLED)
                 .values(summary=summary, heartbeat_at=None), rows)


def finish_job(conn: Connection, claim: Claim, *, status: str, summary: dict[str, Any] | None,
               error: str | None = None) -> bool:
    """End the run; a job cancelled meanwhile stays cancelled but keeps its summary."""
    values: dict[str, Any] = {"summary": summary, "heartbeat_at": None}
    if error is not None:
        values["error"] = error
    running = conn.execute(
        update(Job).where(Job.id == claim.job_id, Job.attempt == claim.attempt,
                          Job.status == RUNNING)
        .values(status=status, finished_at=utcnow(), **values))
    if running.rowcount == 1:
        return True
    conn.execute(update(Job).where(Job.id == claim.job_id, Job.attempt == claim.attempt,
                                   Job.status == CANCELLED)
                 .values(**values))
    return False


def cancel_job(conn: Connection, job_id: uuid.UUID) -> bool:
    """Mark a queued or running job cancelled; False if it had already finished."""
    result = conn.execute(
        update(Job).where(Job.id == job_id, Job.status.in_((QUEUED, RUNNING)))
        .values(status=CANCELLED, finished_at=utcnow()))
    return result.rowcount == 1


def fail_job(conn: Connection, job_id: uuid.UUID, error: str) -> None:
    conn.execute(update(Job).where(Job.id == job_id, Job.status.in_((QUEUED, RUNNING)))
                 .values(status=FAILED, finished_at=utcnow(), error=error))


def orphaned_jobs(conn: Connection, *, stale_after: timedelta,
                  include_queued: bool = False) -> list[Job]:
    """Running jobs whose worker stopped beating (and, on request, every queued job),
    oldest first."""
    stale = or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < utcnow() - stale_after)
    condition = and_(Job.status == RUNNING, stale)
    if include_queued:
        condition = or_(condition, Job.status == QUEUED)
    query = select(Job.__table__).where(condition).order_by(Job.created_at, Job.id)
    return [Job(**row._mapping) for row in conn.execute(query)]


def queued_before(conn: Connection, before: datetime) -> list[tuple[uuid.UUID, str]]:
    """(id, queue) of the queued jobs created before ``before``, oldest first."""
    query = (select(Job.id, Job.queue).where(Job.status == QUEUED, Job.created_at < before)
             .order_by(Job.created_at, Job.id))
    return [(row.id, row.queue) for row in conn.execute(query)]


def running_on(conn: Connection, worker: str) -> list[Job]:
    query = select(Job.__table__).where(Job.status == RUNNING, Job.worker == worker)
    return [Job(**row._mapping) for row in conn.execute(query)]


def requeue_job(conn: Connection, job: Job) -> bool:
    """Put a running job back in the queue, unless someone else changed it first."""
    result = conn.execute(
        update(Job).where(Job.id == job.id, Job.attempt == job.attempt, Job.status == job.status)
        .values(status=QUEUED, heartbeat_at=None, summary=None))
    return result.rowcount == 1



def waiting_since(conn: Connection, queue: str, *, queued_before: datetime) -> list[Job]:
    """The jobs of ``queue`` queued since before ``queued_before``, oldest first."""
    query = (select(Job.__table__).where(Job.queue == queue, Job.status == QUEUED,
                                         Job.created_at < queued_before)
             .order_by(Job.created_at, Job.id))
    return [Job(**row._mapping) for row in conn.execute(query)]


def move_queued(conn: Connection, job_id: uuid.UUID, queue: str) -> bool:
    """Send a still-queued job to another queue; False if it left the queue meanwhile."""
    result = conn.execute(update(Job).where(Job.id == job_id, Job.status == QUEUED)
                          .values(queue=queue))
    return result.rowcount == 1


def fail_queued(conn: Connection, job_id: uuid.UUID, error: str) -> bool:
    """Fail a job that is still queued; False if a worker took it (or it ended) meanwhile."""
    result = conn.execute(update(Job).where(Job.id == job_id, Job.status == QUEUED)
                          .values(status=FAILED, finished_at=utcnow(), error=error))
    return result.rowcount == 1
