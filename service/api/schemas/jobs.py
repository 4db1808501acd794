"""Bodies of /v1/jobs: a job, a page of them, PATCH's request, series and log lines."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.config import JsonDict

from optimlab.service.api.schemas.common import UtcDatetime
from optimlab.service.jobs.logs import level_name
from optimlab.worker.spec import JobName, JobSpec, Tags

if TYPE_CHECKING:  # the rows the use cases return, read by attribute
    from optimlab.service.db.metrics import SeriesExtent
    from optimlab.service.db.models import Job, JobLog

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class JobPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    status: Status
    spec: JobSpec
    queue: str
    attempt: int
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    error: str | None
    summary: dict[str, Any] | None
    tags: list[str]
    sweep_id: uuid.UUID | None
    sweep_point: dict[str, Any] | None

    @classmethod
    def of(cls, job: Job) -> JobPublic:
        return cls.model_validate({**{c: getattr(job, c) for c in cls.model_fields
                                      if c != "tags"},
                                   "tags": job.spec.get("tags") or []})


class JobsPublic(BaseModel):
    data: list[JobPublic]
    next_cursor: str | None


def _without_null(schema: JsonDict) -> None:
    """The field's schema less its ``null`` branch (and its default of null)."""
    branches = schema.pop("anyOf", None)
    if isinstance(branches, list):
        kept = [b for b in branches if b != {"type": "null"}]
        if len(kept) == 1 and isinstance(kept[0], dict):
            schema.update(kept[0])
        else:
            schema["anyOf"] = kept
    schema.pop("default", None)


class JobPatch(BaseModel):
    """What ``PATCH /v1/jobs/{id}`` changes; a field left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    # None only stands for "left out": the schema offers no null, which is refused.
    name: JobName | None = Field(default=None, json_schema_extra=_without_null)
    tags: Tags | None = Field(default=None, description="replaces the job's tags",
                              json_schema_extra=_without_null)

    @field_validator("name", "tags")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Runs only for a field the body gives: null would mean neither "keep" nor a value.
        if value is None:
            raise ValueError("leave the field out to keep it; null is not a value")
        return value


class SeriesExtentPublic(BaseModel):
    name: str
    points: int
    first_step: int
    last_step: int

    @classmethod
    def of(cls, extent: SeriesExtent) -> SeriesExtentPublic:
        return cls(name=extent.name, points=extent.points, first_step=extent.first_step,
                   last_step=extent.last_step)


class JobSeriesPublic(BaseModel):
    job_id: uuid.UUID
    series: list[SeriesExtentPublic]


class LogLinePublic(BaseModel):
    attempt: int
    at: UtcDatetime
    level: str
    logger: str
    message: str

    @classmethod
    def of(cls, line: JobLog) -> LogLinePublic:
        return cls(attempt=line.attempt, at=line.at, level=level_name(line.level),
                   logger=line.logger, message=line.message)


class JobLogsPublic(BaseModel):
    job_id: uuid.UUID
    lines: list[LogLinePublic]
