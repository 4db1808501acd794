"""Per-bucket statistics of one series, computed in the database, on shared step buckets.

Buckets are ``[lo + k*width, lo + (k+1)*width)`` for ``k = 0, 1, ...`` up to ``hi``, with
``width = ceil((hi - lo + 1) / max_points)``: they depend only on (lo, hi, max_points), so
every job of a comparison gets the same ones. Non-finite values (NULL in SQLite, NaN or
infinity in PostgreSQL) are left out of the statistics.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from optimlab.service.db.models import Metric

FINITE = 1.7976931348623157e308


@dataclass(frozen=True)
class Buckets:
    lo: int
    hi: int
    width: int

    @property
    def count(self) -> int:
        return -(-(self.hi - self.lo + 1) // self.width)

    @property
    def starts(self) -> list[int]:
        return [self.lo + k * self.width for k in range(self.count)]


@dataclass(frozen=True)
class BucketStats:
    mean: list[float | None]
    minimum: list[float | None]
    maximum: list[float | None]
    points: list[int]


def plan_buckets(lo: int, hi: int, max_points: int) -> Buckets:
    """At most ``max_points`` buckets over [lo, hi] (one per step when they fit)."""
    return Buckets(lo=lo, hi=hi, width=max(1, -(-(hi - lo + 1) // max_points)))


def last_step(conn: Connection, job_ids: list[uuid.UUID], name: str) -> int | None:
    return conn.scalar(select(func.max(Metric.step)).where(Metric.job_id.in_(job_ids),
                                                           Metric.name == name))


def bucket_stats(conn: Connection, job_id: uuid.UUID, name: str, buckets: Buckets) -> BucketStats:
    bucket = ((Metric.step - buckets.lo) // buckets.width).label("bucket")
    value = Metric.value
    query = (select(bucket, func.avg(value), func.min(value), func.max(value),
                    func.count(value))
             .where(Metric.job_id == job_id, Metric.name == name,
                    Metric.step.between(buckets.lo, buckets.hi),
                    value.between(-FINITE, FINITE))
             .group_by(bucket))
    stats = BucketStats([None] * buckets.count, [None] * buckets.count,
                        [None] * buckets.count, [0] * buckets.count)
    for k, mean, low, high, points in conn.execute(query):
        stats.mean[int(k)], stats.minimum[int(k)] = float(mean), float(low)
        stats.maximum[int(k)], stats.points[int(k)] = float(high), int(points)
    return stats
