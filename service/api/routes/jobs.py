"""/v1/jobs: submit, inspect, list, cancel, and read metric histories."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from optimlab.service.api.deps import CallerDep, DbDep, DispatcherDep, SettingsDep
from optimlab.service.api.schemas.common import QUOTA, ErrorPublic, ValidationErrorPublic
from optimlab.service.api.schemas.jobs import JobPublic, JobsPublic, Status
from optimlab.service.jobs import cancel, listing, queries, submit
from optimlab.service.jobs.listing import JobFilter
from optimlab.worker.spec import JobSpec

router = APIRouter(prefix="/v1/jobs", tags=["jobs"],
                   responses={422: {"model": ValidationErrorPublic,
                                    "description": "A field is invalid; `message` names it"}})
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "No job with this id"}}

@router.post("", status_code=201, response_model=JobPublic, responses={
    413: {"model": ErrorPublic, "description": "Body over the size limit"},
    503: {"model": ErrorPublic, "description": "The broker is unreachable; the job is failed"},
    **QUOTA})
def create_job(spec: JobSpec, response: Response, db: DbDep, caller: CallerDep,
               dispatcher: DispatcherDep, settings: SettingsDep) -> JobPublic:
    """Validate the spec, store the job as queued and send it to a worker."""
    job = submit.submit_job(db=db, caller=caller, dispatcher=dispatcher,
                            settings=settings, spec=spec)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobPublic.of(job)


@router.get("", response_model=JobsPublic)
def list_jobs(db: DbDep, caller: CallerDep, status: Status | None = None,
              tag: Annotated[str | None, Query(max_length=100)] = None,
              name: Annotated[str | None, Query(max_length=200,
                                                description="a substring of the name")] = None,
              optimizer: Annotated[str | None, Query(max_length=64)] = None,
              sweep: uuid.UUID | None = None,
              created_after: datetime | None = None, created_before: datetime | None = None,
              sort: Annotated[str, Query(
                  max_length=100, json_schema_extra={"enum": listing.SORT_KEYS},
                  description="-created_at (default), or a summary field such "
                  "as best_loss, -steps_per_second or evaluation.val_accuracy; - is descending"
              )] = listing.NEWEST_FIRST,
              limit: Annotated[int, Query(ge=1, le=1000)] = 50,
              cursor: Annotated[str | None, Query(max_length=500)] = None) -> JobsPublic:
    """Jobs matching every filter given; pass ``next_cursor`` back as ``cursor`` for more."""
    where = JobFilter(status=status, tag=tag, name=name, optimizer=optimizer, sweep_id=sweep,
                      created_after=_naive_utc(created_after),
                      created_before=_naive_utc(created_before))
    page, next_cursor = listing.list_jobs(db=db, caller=caller, where=where, sort=sort,
                                          limit=limit,
                                          cursor=cursor)
    return JobsPublic(data=[JobPublic.of(job) for job in page], next_cursor=next_cursor)


def _naive_utc(value: datetime | None) -> datetime | None:
    # Stored timestamps are naive UTC; a client's may carry any offset.
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


@router.get("/{job_id}", response_model=JobPublic, responses=NOT_FOUND)
def get_job(job_id: uuid.UUID, db: DbDep, caller: CallerDep) -> JobPublic:
    """The job: status, spec, timestamps, error and summary (progress while it runs)."""
    return JobPublic.of(queries.get_job(db=db, caller=caller, job_id=job_id))


@router.post("/{job_id}/cancel", response_model=JobPublic, responses={
    **NOT_FOUND, 409: {"model": ErrorPublic, "description": "The job has already finished"}})
def cancel_job(job_id: uuid.UUID, db: DbDep, caller: CallerDep) -> JobPublic:
    """A queued job never runs; a running one stops within about a second, keeping its metrics."""
    return JobPublic.of(cancel.cancel_job(db=db, caller=caller, job_id=job_id))
