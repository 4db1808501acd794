"""One series' history over a step range, downsampled when it is long.

Downsampling is M4 (Jugel et al., VLDB 2014): the range is cut into step buckets and each
bucket keeps its first, last, minimum and maximum point, so spikes, the global extremes
and both ends of the range survive, and a line drawn through the kept points covers the
same pixels as one drawn through all of them.

How many buckets. A bucket keeps up to four points, but on a smooth stretch its first
point is also its minimum and its last its maximum, so ``max_points // 4`` buckets return
about half of ``max_points``. The bucket width is therefore searched: the narrowest
width whose buckets' distinct kept points number at most ``max_points``, among the
multiples of a grain (1/GRAIN of the width of ``max_points // 4`` buckets, which always
fits). M4 composes over buckets that are unions of smaller ones (a bucket's first, last,
earliest minimum and latest maximum are among the points its sub-buckets keep), so M4 of
the grain is computed once over every point and each candidate width only over those
points. The search (the kept count falls as buckets widen, roughly in proportion to
their number) starts where that proportion points, searches outwards and bisects: two to
four passes over the grain's points. Of the widths tried that fit, the one keeping the
most points wins. A smooth or constant series then returns within about 1 % of
``max_points`` (it returned half), a noisy one as many as before or a few more; a range
of fewer than about ``4 * max_points`` steps is limited by whole-step widths.

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
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection

from optimlab.service.db import metrics
from optimlab.service.db.compare import Buckets, plan_buckets
from optimlab.service.db.packing import Steps, Values

METHOD = ("m4: the first, last, min and max point of each step bucket, the buckets as "
          "narrow as max_points allows")
# Points one bucket keeps at most: the smallest max_points that can be honoured.
PER_BUCKET = 4
# Candidate bucket widths are multiples of the width of max_points // PER_BUCKET buckets
# divided by GRAIN: the count returned is within about PER_BUCKET / GRAIN of the best.
GRAIN = 128


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
    ``max_points``: all of them when they fit, else the M4 points of the narrowest step
    buckets spanning the first to the last step in range whose points fit (:func:`plan`).
    """
    if max_points is not None and max_points < PER_BUCKET:
        raise ValueError(f"max_points must be at least {PER_BUCKET}, got {max_points}")
    steps, values = metrics.load(conn, job_id, [name], lo=lo, hi=hi)[name]
    if max_points is None or steps.size <= max_points:
        return History(name, steps.tolist(), values.tolist())
    keep, buckets = plan(steps, values, max_points)
    return History(name, steps[keep].tolist(), values[keep].tolist(),
                   Downsampling(method=METHOD, buckets=buckets.count,
                                bucket_width=buckets.width, points_in_range=int(steps.size)))


def plan(steps: Steps, values: Values,
         max_points: int) -> tuple[npt.NDArray[np.intp], Buckets]:
    """The M4 indices of the narrowest buckets (widths: multiples of the grain) that keep
    at most ``max_points`` points, and those buckets."""
    lo, hi = int(steps[0]), int(steps[-1])
    key = order_key(values)
    widest = plan_buckets(lo, hi, max(1, max_points // PER_BUCKET)).width  # always fits
    grain = max(1, widest // GRAIN)
    fine = (m4(steps, key, Buckets(lo, hi, grain)) if grain > 1
            else np.arange(steps.size, dtype=np.intp))
    fine_steps, fine_key = steps[fine], key[fine]
    tried: dict[int, npt.NDArray[np.intp]] = {}

    def kept(multiple: int) -> npt.NDArray[np.intp]:
        if multiple not in tried:
            tried[multiple] = m4(fine_steps, fine_key, Buckets(lo, hi, multiple * grain))
        return tried[multiple]

    top = -(-widest // grain)
    # Merging m grain buckets into one keeps about as many points per bucket: the count
    # is about fine.size / m.
    multiple = narrowest(lambda m: kept(m).size, max_points,
                         guess=min(top, -(-fine.size // max_points)), top=top)
    kept(multiple)
    # The count is not strictly monotone in the width: of every width tried that fits,
    # the one that keeps the most points (the narrowest of those).
    multiple = max((m for m, k in tried.items() if k.size <= max_points),
                   key=lambda m: (tried[m].size, -m))
    return fine[tried[multiple]], Buckets(lo, hi, multiple * grain)


def narrowest(count: Callable[[int], int], limit: int, *, guess: int, top: int) -> int:
    """The smallest ``m`` in ``[1, top]`` with ``count(m) <= limit``, for a ``count`` that
    falls as ``m`` grows, about in proportion to 1/m, and is within the limit at ``top``.

    Up to three proportional steps from ``guess`` (to where ``count`` would reach
    ``limit``), then bisection of what is left: two or three calls when the proportion
    holds, about log2(top) more when it does not.
    """
    low, high = 1, top  # nothing below low fits; high does
    for _ in range(3):
        if low >= high:
            break
        guess = min(max(guess, low), high - 1)
        found = count(guess)
        if found <= limit:
            high = guess
        else:
            low = guess + 1
        guess = -(-guess * found // limit)
    while low < high:
        middle = (low + high) // 2
        if count(middle) <= limit:
            high = middle
        else:
            low = middle + 1
    return high


def m4(steps: Steps, key: npt.NDArray[np.int64], buckets: Buckets) -> npt.NDArray[np.intp]:
    """Indices (increasing) of each bucket's first, last, minimum and maximum point, the
    values ranked by ``key`` (:func:`order_key`)."""
    if steps.size and steps[0] == buckets.lo and steps[-1] - steps[0] + 1 == steps.size:
        return _m4_consecutive(key, buckets.width)
    bucket = (steps - buckets.lo) // buckets.width
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], steps.size] - 1
    sizes = np.diff(np.r_[starts, steps.size])
    index = np.arange(steps.size)
    lowest = key == np.repeat(np.minimum.reduceat(key, starts), sizes)
    highest = key == np.repeat(np.maximum.reduceat(key, starts), sizes)
    # The earliest index of each bucket's minimum, the latest of its maximum.
    first_low = np.minimum.reduceat(np.where(lowest, index, steps.size), starts)
    last_high = np.maximum.reduceat(np.where(highest, index, -1), starts)
    kept = np.zeros(steps.size, dtype=bool)  # a mask, not np.unique: no sort
    for chosen in (starts, ends, first_low, last_high):
        kept[chosen] = True
    return np.flatnonzero(kept)


def _m4_consecutive(key: npt.NDArray[np.int64], width: int) -> npt.NDArray[np.intp]:
    """:func:`m4` when the points are the steps lo, lo + 1, ... (a series recorded every
    step): whole buckets are the rows of a reshaped array, reduced along them."""
    kept = np.zeros(key.size, dtype=bool)
    whole = key.size // width * width
    rows = key[:whole].reshape(-1, width)
    starts = np.arange(0, whole, width)
    kept[starts] = kept[starts + width - 1] = True
    kept[starts + rows.argmin(axis=1)] = True  # argmin: the earliest minimum
    kept[starts + width - 1 - rows[:, ::-1].argmax(axis=1)] = True  # the latest maximum
    if whole < key.size:  # the last bucket, short
        tail = key[whole:]
        kept[np.array([whole, key.size - 1, whole + int(tail.argmin()),
                       key.size - 1 - int(tail[::-1].argmax())])] = True
    return np.flatnonzero(kept)


def order_key(values: Values) -> npt.NDArray[np.int64]:
    """Integers that order as ``-inf < finite < +inf < NaN`` order the values.

    A float's bits read as a signed integer order the positive floats; flipping the
    magnitude bits of the negative ones orders those too. NaN is made the positive quiet
    NaN first, whose bits lie above +inf's. -0.0 and 0.0 stay distinct, -0.0 first.
    """
    canonical = np.where(np.isnan(values), np.nan, values)
    bits = canonical.view(np.int64)
    return np.where(bits < 0, bits ^ np.int64(0x7FFFFFFFFFFFFFFF), bits)
