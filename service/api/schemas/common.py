"""What every resource's bodies share: UTC times on the wire, and the error bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, PlainSerializer


def _utc(value: datetime) -> str:
    # Stored as naive UTC; say so on the wire.
    return value.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


UtcDatetime = Annotated[datetime, PlainSerializer(_utc, return_type=str)]


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
