"""Response bodies of /v1/compare (documentation for OpenAPI; the route renders with orjson)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ComparedJobPublic(BaseModel):
    id: str
    name: str
    status: str
    seed: int
    differs: dict[str, Any]
    values: list[float | None]
    min: list[float | None]
    max: list[float | None]
    summary: dict[str, Any] | None


class SeedGroupPublic(BaseModel):
    jobs: list[str]
    seeds: list[int]
    differs: dict[str, Any]
    mean: list[float | None]
    low: list[float | None]
    high: list[float | None]
    band: str


class RankedJobPublic(BaseModel):
    rank: int
    id: str
    name: str
    value: float | None
    summary: dict[str, Any] | None


class ComparisonPublic(BaseModel):
    metric: str
    steps: list[int]
    bucket_width: int
    method: str
    rank_by: str
    jobs: list[ComparedJobPublic]
    groups: list[SeedGroupPublic]
    ranking: list[RankedJobPublic]
