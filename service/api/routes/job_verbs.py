"""/v1/jobs/{id}: delete, rerun, rename and retag a job; list its series and its log lines."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from optimlab.service.api.deps import CallerDep, DbDep, DispatcherDep, SettingsDep
from optimlab.service.api.schemas.common import QUOTA, ErrorPublic, ValidationErrorPublic
from optimlab.service.api.schemas.jobs import (
    JobLogsPublic,
    JobPatch,
    JobPublic,
    JobSeriesPublic,
    LogLinePublic,
    SeriesExtentPublic,
)
from optimlab.service.jobs import checkpoints, deletion, logs, queries, relabel, rerun

router = APIRouter(prefix="/v1/jobs", tags=["jobs"],
                   responses={422: {"model": ValidationErrorPublic,
                                    "description": "A field is invalid; `message` names it"}})
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "No job with this id"}}


@router.delete("/{job_id}", status_code=204, response_class=Response, responses={
    **NOT_FOUND, 409: {"model": ErrorPublic, "description": "Queued or running: cancel it first"}})
def delete_job(job_id: uuid.UUID, db: DbDep, caller: CallerDep,
               settings: SettingsDep) -> Response:
    """Delete a finished job with its points, tags, log lines and checkpoints."""
    deletion.delete_job(db=db, caller=caller, job_id=job_id, settings=settings)
    return Response(status_code=204)


@router.post("/{job_id}/rerun", status_code=201, response_model=JobPublic, responses={
    **NOT_FOUND, 503: {"model": ErrorPublic, "description": "The broker is unreachable"},
    **QUOTA})
def rerun_job(job_id: uuid.UUID, response: Response, db: DbDep, caller: CallerDep,
              dispatcher: DispatcherDep, settings: SettingsDep) -> JobPublic:
    """A new job with the same spec (in no sweep), submitted as ``POST /v1/jobs`` does."""
    job = rerun.rerun_job(db=db, caller=caller, dispatcher=dispatcher, settings=settings,
                          job_id=job_id)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobPublic.of(job)


@router.patch("/{job_id}", response_model=JobPublic, responses=NOT_FOUND)
def patch_job(job_id: uuid.UUID, patch: JobPatch, db: DbDep,
              caller: CallerDep) -> JobPublic:
    """Rename the job or replace its tags (in its spec too), in any state."""
    return JobPublic.of(relabel.relabel_job(db=db, caller=caller, job_id=job_id,
                        name=patch.name,
                                            tags=patch.tags))


@router.get("/{job_id}/checkpoint", response_class=Response, responses={
    200: {"content": {"application/octet-stream": {}},
          "description": "The model's state_dict as safetensors"},
    404: {"model": ErrorPublic, "description": "No job with this id, or no checkpoint (at "
                                              "this step) yet"}})
def download_checkpoint(
        job_id: uuid.UUID, db: DbDep, settings: SettingsDep, caller: CallerDep,
        step: Annotated[int | None, Query(ge=0, description="a checkpointed step; default: "
                                                            "the latest")] = None) -> Response:
    """The model parameters (``state_dict``, as safetensors) of the job's latest checkpoint,
    or of the one at ``step``: while it runs, and its final model once it has finished."""
    found = checkpoints.model_file(db=db, settings=settings, caller=caller,
                                   job_id=job_id, step=step)
    return Response(content=found.content, media_type="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="{found.filename}"',
        "X-Checkpoint-Step": str(found.step)})


@router.get("/{job_id}/series", response_model=JobSeriesPublic, responses=NOT_FOUND)
def list_series(job_id: uuid.UUID, db: DbDep, caller: CallerDep) -> JobSeriesPublic:
    """Every stored series with its point count and first and last step; loss and lr first."""
    extents = queries.series_extents(db=db, caller=caller, job_id=job_id)
    return JobSeriesPublic(job_id=job_id, series=[SeriesExtentPublic.of(e) for e in extents])


@router.get("/{job_id}/logs", response_model=JobLogsPublic, responses=NOT_FOUND)
def read_logs(job_id: uuid.UUID, db: DbDep, caller: CallerDep,
              attempt: Annotated[int | None, Query(
                  ge=1, le=2**31 - 1, description="one run's lines")] = None,
              min_level: logs.LevelName = "DEBUG",
              limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> JobLogsPublic:
    """What the worker logged while it ran the job (warnings and errors of torch and Python,
    the run's start and end), oldest first."""
    lines = logs.read_logs(db=db, caller=caller, job_id=job_id, attempt=attempt,
                           min_level=min_level,
                           limit=limit)
    return JobLogsPublic(job_id=job_id, lines=[LogLinePublic.of(line) for line in lines])
