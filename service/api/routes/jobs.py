"""/v1/jobs: submit, inspect, list, cancel, and read metric histories."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from optimlab.service.api.deps import DispatcherDep, EngineDep, SettingsDep
from optimlab.service.api.schemas import (
    ErrorPublic,
    JobPublic,
    JobsPublic,
    Status,
    ValidationErrorPublic,
)
from optimlab.service.jobs import cancel, queries, submit
from optimlab.worker.spec import JobSpec

router = APIRouter(prefix="/v1/jobs", tags=["jobs"],
                   responses={422: {"model": ValidationErrorPublic,
                                    "description": "A field is invalid; `message` names it"}})
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "No job with this id"}}

@router.post("", status_code=201, response_model=JobPublic, responses={
    413: {"model": ErrorPublic, "description": "Body over the size limit"},
    503: {"model": ErrorPublic, "description": "The broker is unreachable; the job is failed"}})
def create_job(spec: JobSpec, response: Response, engine: EngineDep,
               dispatcher: DispatcherDep, settings: SettingsDep) -> JobPublic:
    """Validate the spec, store the job as queued and send it to a worker."""
    job = submit.submit_job(engine=engine, dispatcher=dispatcher, settings=settings, spec=spec)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobPublic.of(job)


@router.get("", response_model=JobsPublic)
def list_jobs(engine: EngineDep, status: Status | None = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 50,
              cursor: Annotated[str | None, Query(max_length=200)] = None) -> JobsPublic:
    """Newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
    page, next_cursor = queries.list_jobs(engine=engine, status=status, limit=limit,
                                          cursor=cursor)
    return JobsPublic(data=[JobPublic.of(job) for job in page], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobPublic, responses=NOT_FOUND)
def get_job(job_id: uuid.UUID, engine: EngineDep) -> JobPublic:
    """The job: status, spec, timestamps, error and summary (progress while it runs)."""
    return JobPublic.of(queries.get_job(engine=engine, job_id=job_id))


@router.post("/{job_id}/cancel", response_model=JobPublic, responses={
    **NOT_FOUND, 409: {"model": ErrorPublic, "description": "The job has already finished"}})
def cancel_job(job_id: uuid.UUID, engine: EngineDep) -> JobPublic:
    """A queued job never runs; a running one stops within about a second, keeping its metrics."""
    return JobPublic.of(cancel.cancel_job(engine=engine, job_id=job_id))
