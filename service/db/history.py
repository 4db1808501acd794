"""One series' history over a step range, downsampled when it is long.

Downsampling is M4 (Jugel et al., VLDB 2014): the range is cut into step buckets and each
bucket keeps its first, last, minimum and maximum point, so spikes, the global extremes
and both ends of the range survive, and a line drawn through the kept points covers the
same pixels as one drawn through all of them.

The series is stored packed (service/db/metrics.py), so the range arrives as two arrays
and the buckets are chosen with vectorised numpy: a million points take tens of
milliseconds, where a grouping query over one row per point took about 0.4 s.

Non-finite values. Minimum and maximum follow the order ``-inf < finite < +inf < NaN``
(PostgreSQL's order of float8), so a divergence spike to infinity or NaN is the extreme
of its bucket and is always kept, at the price of that bucket's finite maximum (or
minimum, for -inf); JSON shows both as null. Ties go to the earliest step for the minimum
and to the latest for the maximum.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection

from optimlab.service.db import metrics
from optimlab.service.db.compare import Buckets, plan_buckets
from optimlab.service.db.packing import Steps, Values

METHOD = "m4: the first, last, min and max point of each step bucket"
# Points one bucket keeps at most: the smallest max_points that can be honoured.
PER_BUCKET = 4


@dataclass(frozen=True)
class Downsampling:
    method: str
    buckets: int
    bucket_width: int
    points_in_range: int


@dataclass
class History:
    name: str
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    downsampled: Downsampling | None = None


def read_history(conn: Connection, job_id: uuid.UUID, name: str, *, lo: int | None,
                 hi: int | None, max_points: int | None) -> History:
    """The points of ``name`` with ``lo <= step <= hi`` (None: unbounded), in step order.

    Without ``max_points``, all of them. With it (at least PER_BUCKET), at most
    ``max_points``: all of them when they fit, else the M4 points of
    ``max_points // PER_BUCKET`` buckets spanning the first to the last step in range.
    """
    if max_points is not None and max_points < PER_BUCKET:
        raise ValueError(f"max_points must be at least {PER_BUCKET}, got {max_points}")
    steps, values = metrics.load(conn, job_id, [name], lo=lo, hi=hi)[name]
    if max_points is None or steps.size <= max_points:
        return History(name, steps.tolist(), values.tolist())
    buckets = plan_buckets(int(steps[0]), int(steps[-1]), max(1, max_points // PER_BUCKET))
    keep = m4(steps, values, buckets)
    return History(name, steps[keep].tolist(), values[keep].tolist(),
                   Downsampling(method=METHOD, buckets=buckets.count,
                                bucket_width=buckets.width, points_in_range=int(steps.size)))


def m4(steps: Steps, values: Values, buckets: Buckets) -> npt.NDArray[np.intp]:
    """Indices (increasing) of each bucket's first, last, minimum and maximum point."""
    bucket = (steps - buckets.lo) // buckets.width
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], steps.size] - 1
    key = order_key(values)
    sizes = np.diff(np.r_[starts, steps.size])
    index = np.arange(steps.size)
    lowest = key == np.repeat(np.minimum.reduceat(key, starts), sizes)
    highest = key == np.repeat(np.maximum.reduceat(key, starts), sizes)
    # The earliest index of each bucket's minimum, the latest of its maximum.
    first_low = np.minimum.reduceat(np.where(lowest, index, steps.size), starts)
    last_high = np.maximum.reduceat(np.where(highest, index, -1), starts)
    return np.unique(np.concatenate([starts, ends, first_low, last_high]))


def order_key(values: Values) -> npt.NDArray[np.int64]:
    """Integers that order as ``-inf < finite < +inf < NaN`` order the values.

    A float's bits read as a signed integer order the positive floats; flipping the
    magnitude bits of the negative ones orders those too. NaN is made the positive quiet
    NaN first, whose bits lie above +inf's. -0.0 and 0.0 stay distinct, -0.0 first.
    """
    canonical = np.where(np.isnan(values), np.nan, values)
    bits = canonical.view(np.int64)
    return np.where(bits < 0, bits ^ np.int64(0x7FFFFFFFFFFFFFFF), bits)
