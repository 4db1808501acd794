"""Response bodies of the API (the request body is the shared JobSpec, or a data set file)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, PlainSerializer

from optimlab.worker.spec import JobSpec

if TYPE_CHECKING:  # the rows the use cases return, read by attribute
    from optimlab.service.db.models import Job, StoredDataset

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]


def _utc(value: datetime) -> str:
    # Stored as naive UTC; say so on the wire.
    return value.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


UtcDatetime = Annotated[datetime, PlainSerializer(_utc, return_type=str)]


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


class DownsamplingPublic(BaseModel):
    """How a series was thinned to ``max_points``, in the database."""

    method: str
    buckets: int
    bucket_width: int
    points_in_range: int


class SeriesPublic(BaseModel):
    """One series; ``downsampled`` comes with ``max_points`` (null: every point in range
    fitted) and ``smoothed`` with ``smoothing`` (the EMA of ``values``, point by point)."""

    name: str
    steps: list[int]
    values: list[float | None]
    downsampled: DownsamplingPublic | None = None
    smoothed: list[float | None] | None = None


class MetricsPublic(BaseModel):
    job_id: uuid.UUID
    series: list[SeriesPublic]


class ErrorPublic(BaseModel):
    detail: str


class QuotaErrorPublic(BaseModel):
    """A 429 or 403: the owner is at one of its quotas (the setting's name) and its limit."""

    detail: str
    quota: Literal["quota_running_jobs", "quota_queued_jobs", "quota_stored_points"]
    limit: int


QUOTA: dict[int | str, dict[str, Any]] = {
    429: {"model": QuotaErrorPublic,
          "description": "The owner's running or queued jobs are at their quota"},
    403: {"model": QuotaErrorPublic,
          "description": "The owner's jobs store their quota of metric points"}}


class ValidationErrorPublic(BaseModel):
    """A 422: FastAPI's list of errors, each with its ``loc``, plus one readable line."""

    detail: list[dict[str, Any]]
    message: str


class Readiness(BaseModel):
    ready: bool
    database: str
    broker: str
    workers: int


class DatasetPublic(BaseModel):
    """An uploaded data set; jobs use it as ``{"kind": "upload", "dataset_id": id}``."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    filename: str
    format: Literal["csv", "npz"]
    target: str | None
    rows: int
    features: int
    classes: int | None
    size_bytes: int
    created_at: UtcDatetime

    @classmethod
    def of(cls, dataset: StoredDataset) -> DatasetPublic:
        return cls.model_validate(dataset)


class DatasetsPublic(BaseModel):
    data: list[DatasetPublic]
