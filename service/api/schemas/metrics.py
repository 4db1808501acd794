"""Bodies of a job's metrics: its series, each as stored or downsampled."""

from __future__ import annotations

import uuid

from pydantic import BaseModel


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
