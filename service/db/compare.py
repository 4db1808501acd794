"""Per-bucket statistics of one series, on step buckets that several jobs can share.

Buckets are ``[lo + k*width, lo + (k+1)*width)`` for ``k = 0, 1, ...`` up to ``hi``, with
``width = ceil((hi - lo + 1) / max_points)``: they depend only on (lo, hi, max_points), so
every job of a comparison gets the same ones. Non-finite values (NaN, infinities) are left
out of the statistics, which numpy computes over the stored chunks of the range.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, func, select

from optimlab.service.db import metrics
from optimlab.service.db.metrics import chunks


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
    c = chunks.c
    last = conn.scalar(select(func.max(c.last_step)).where(c.job_id.in_(job_ids), c.name == name))
    return None if last is None else int(last)


def bucket_stats(conn: Connection, job_id: uuid.UUID, name: str, buckets: Buckets) -> BucketStats:
    steps, values = metrics.load(conn, job_id, [name], lo=buckets.lo, hi=buckets.hi)[name]
    finite = np.isfinite(values)
    bucket = (steps[finite] - buckets.lo) // buckets.width
    kept = values[finite]
    count = np.bincount(bucket, minlength=buckets.count)
    total = np.bincount(bucket, weights=kept, minlength=buckets.count)
    low, high = _extremes(bucket, kept, buckets.count)
    present = count > 0
    mean = np.divide(total, count, out=np.zeros(buckets.count), where=present)
    return BucketStats(_where(mean, present), _where(low, present), _where(high, present),
                       count.tolist())


def _extremes(bucket: npt.NDArray[np.int64], values: npt.NDArray[np.float64],
              count: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Each bucket's min and max (inf and -inf where empty). Stored steps come in order, so
    a bucket's values are one run: reduceat, ten times faster than ufunc.at on 100k points
    (a compare of 100 such jobs spent a third of its time there)."""
    low = np.full(count, np.inf)
    high = np.full(count, -np.inf)
    if not bucket.size:
        return low, high
    if np.any(bucket[1:] < bucket[:-1]):  # not in step order: the general way
        np.minimum.at(low, bucket, values)
        np.maximum.at(high, bucket, values)
        return low, high
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    low[bucket[starts]] = np.minimum.reduceat(values, starts)
    high[bucket[starts]] = np.maximum.reduceat(values, starts)
    return low, high


def _where(values: npt.NDArray[np.float64], present: npt.NDArray[np.bool_]) -> list[float | None]:
    return [value if here else None
            for value, here in zip(values.tolist(), present.tolist(), strict=True)]
