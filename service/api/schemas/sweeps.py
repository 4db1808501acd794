"""Response bodies of /v1/sweeps."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel

from optimlab.service.api.schemas.common import UtcDatetime
from optimlab.service.jobs.sweeps import SweepView


class LeaderboardEntryPublic(BaseModel):
    rank: int
    job_id: str
    status: str
    point: dict[str, Any]
    seed: int
    value: Any
    outcome: str | None


class PointPublic(BaseModel):
    """One point of the sweep: the ranking metric over its seeds."""

    point: dict[str, Any]
    jobs: list[str]
    seeds: list[int]
    values: int
    mean: float | None
    min: float | None
    max: float | None


class SweepPublic(BaseModel):
    id: uuid.UUID
    name: str
    status: Literal["queued", "running", "finished"]
    size: int
    tags: list[str]
    created_at: UtcDatetime
    counts: dict[str, int]
    request: dict[str, Any]
    fusion: dict[str, Any] | None = None
    rank_by: str | None = None
    leaderboard: list[LeaderboardEntryPublic] | None = None
    by_point: list[PointPublic] | None = None

    @classmethod
    def of(cls, view: SweepView, *, detailed: bool) -> SweepPublic:
        sweep = view.sweep
        extra: dict[str, Any] = {}
        if detailed:
            extra = {"rank_by": view.rank_by, "leaderboard": view.leaderboard,
                     "by_point": view.by_point}
        return cls(id=sweep.id, name=sweep.name, status=view.status,
                   size=sweep.size, tags=sweep.tags, created_at=sweep.created_at,
                   counts=view.counts, request=sweep.request, fusion=sweep.fusion, **extra)


class SweepsPublic(BaseModel):
    data: list[SweepPublic]
    next_cursor: str | None
