"""One series' history over a step range, downsampled in the database when it is long.

Downsampling is M4 (Jugel et al., VLDB 2014): the range is cut into step buckets and each
bucket keeps its first, last, minimum and maximum point, so spikes, the global extremes
and both ends of the range survive, and a line drawn through the kept points covers the
same pixels as one drawn through all of them. The database picks the points: Python
receives at most ``max_points`` rows however long the history.

* PostgreSQL: one hash aggregate over the range; the arg-min and arg-max of each bucket
  come from ``min``/``max`` of ``ARRAY[value, step]`` (arrays compare element by element),
  then one index look-up reads the chosen points; faster than the portable query below,
  which PostgreSQL runs too (see bench/history.py).
* SQLite (and any other dialect): a grouping per bucket (first and last step, min and max
  value), then correlated look-ups along the primary key for the steps of the extremes.
  Window functions (``row_number()`` by value per bucket) sort the whole range instead:
  several times slower on SQLite than this, and slower than reading every point.

Non-finite values. Minimum and maximum follow the order ``-inf < finite < +inf < NaN``,
PostgreSQL's own order of float8; SQLite stores NaN as NULL, which the portable query
ranks the same. So a divergence spike to infinity or NaN is the extreme of its bucket
and is always kept, at the price of that bucket's finite maximum (or minimum, for -inf);
JSON shows both as null. Ties go to the earliest step for the minimum and to the latest
for the maximum, in both queries. NaN comes back as ``math.nan``.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Double,
    Select,
    and_,
    any_,
    bindparam,
    case,
    cast,
    func,
    null,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, array
from sqlalchemy.orm import aliased

from optimlab.service.db.compare import Buckets, plan_buckets
from optimlab.service.db.models import Metric

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

    def add(self, step: int, value: float | None) -> None:
        self.steps.append(int(step))
        self.values.append(math.nan if value is None else float(value))


def read_history(conn: Connection, job_id: uuid.UUID, name: str, *, lo: int | None,
                 hi: int | None, max_points: int | None) -> History:
    """The points of ``name`` with ``lo <= step <= hi`` (None: unbounded), in step order.

    Without ``max_points``, all of them. With it (at least PER_BUCKET), at most
    ``max_points``: all of them when they fit, else the M4 points of
    ``max_points // PER_BUCKET`` buckets spanning the first to the last step in range.
    """
    history = History(name)
    in_range = _in_range(job_id, name, lo, hi)
    points = select(Metric.step, Metric.value).where(in_range).order_by(Metric.step)
    if max_points is None:
        for step, value in conn.execution_options(yield_per=10_000).execute(points):
            history.add(step, value)
        return history
    if max_points < PER_BUCKET:
        raise ValueError(f"max_points must be at least {PER_BUCKET}, got {max_points}")
    # One row more than allowed says whether the range fits, reading a bounded prefix:
    # a short history costs this one query, and no count of the whole range.
    head = conn.execute(points.limit(max_points + 1)).all()
    if len(head) <= max_points:
        for step, value in head:
            history.add(step, value)
        return history
    last = conn.scalar(select(func.max(Metric.step)).where(in_range))
    assert last is not None  # the range holds more than max_points points
    buckets = plan_buckets(int(head[0][0]), int(last), max(1, max_points // PER_BUCKET))
    pick = _m4_postgresql if conn.dialect.name == "postgresql" else _m4_seeks
    chosen, total = pick(conn, job_id, name, buckets)
    for step, value in chosen:
        history.add(step, value)
    history.downsampled = Downsampling(method=METHOD, buckets=buckets.count,
                                       bucket_width=buckets.width, points_in_range=total)
    return history


def _in_range(job_id: uuid.UUID, name: str, lo: int | None,
              hi: int | None) -> ColumnElement[bool]:
    conditions = [Metric.job_id == job_id, Metric.name == name]
    if lo is not None:
        conditions.append(Metric.step >= lo)
    if hi is not None:
        conditions.append(Metric.step <= hi)
    return and_(*conditions)


# The chosen (step, value) pairs in step order, and how many points the buckets hold.
Picked = tuple[list[tuple[int, float | None]], int]


def _bucket(buckets: Buckets) -> ColumnElement[int]:
    return (Metric.step - buckets.lo) // buckets.width


def _m4_postgresql(conn: Connection, job_id: uuid.UUID, name: str, buckets: Buckets) -> Picked:
    in_buckets = _in_range(job_id, name, buckets.lo, buckets.hi)
    # [value, step] arrays order by value, then step; steps are exact in float8 to 2**53.
    pair = array([Metric.value, cast(Metric.step, Double)])
    query = (select(func.min(Metric.step), func.max(Metric.step),
                    func.min(pair, type_=ARRAY(Double))[2],
                    func.max(pair, type_=ARRAY(Double))[2], func.count())
             .where(in_buckets).group_by(_bucket(buckets)))
    steps: set[int] = set()
    total = 0
    for first, last, lowest, highest, size in conn.execute(query):
        steps.update((int(first), int(last), int(lowest), int(highest)))
        total += int(size)
    # One array parameter, not one per step: a statement takes at most 65,535 parameters.
    wanted = bindparam("steps", sorted(steps), type_=ARRAY(BigInteger))
    rows = conn.execute(select(Metric.step, Metric.value)
                        .where(in_buckets, Metric.step == any_(wanted))
                        .order_by(Metric.step)).all()
    return [(int(step), value) for step, value in rows], total


def _m4_seeks(conn: Connection, job_id: uuid.UUID, name: str, buckets: Buckets) -> Picked:
    chosen: dict[int, float | None] = {}
    total = 0
    for first, first_value, last, last_value, low_step, low, high_step, high, size in (
            conn.execute(_m4_seek_query(job_id, name, buckets))):
        chosen.update({first: first_value, last: last_value, low_step: low, high_step: high})
        total += int(size)
    return [(int(step), chosen[step]) for step in sorted(chosen)], total


def _m4_seek_query(job_id: uuid.UUID, name: str, buckets: Buckets) -> Select[Any]:
    """Per bucket: first and last step with their values, then the min and the max value
    with their steps, and the bucket's size.

    A grouping gives each bucket's first and last step, min and max value; the steps of
    the min and the max are found by correlated look-ups that walk the primary key over
    the bucket's steps (window functions would sort the whole range by value: 5x slower
    on SQLite than reading every point). SQLite's min and max skip NULL (its NaN): the
    maximum is NULL when the bucket holds one, and ``IS NOT DISTINCT FROM`` matches it.
    """
    stats = (select(func.min(Metric.step).label("first"), func.max(Metric.step).label("last"),
                    func.min(Metric.value).label("low"),
                    case((func.count(Metric.value) < func.count(), null()),
                         else_=func.max(Metric.value)).label("high"),
                    func.count().label("size"))
             .where(_in_range(job_id, name, buckets.lo, buckets.hi))
             .group_by(_bucket(buckets))
             .subquery("stats"))
    point = aliased(Metric, name="point")
    of_series = and_(point.job_id == job_id, point.name == name)

    def value_at(step: ColumnElement[int]) -> ColumnElement[float]:
        return select(point.value).where(of_series, point.step == step).scalar_subquery()

    def step_of(value: ColumnElement[float], *, latest: bool) -> ColumnElement[int]:
        return (select(point.step)
                .where(of_series, point.step.between(stats.c.first, stats.c.last),
                       point.value.is_not_distinct_from(value))
                .order_by(point.step.desc() if latest else point.step)
                .limit(1).scalar_subquery())

    c = stats.c
    return select(c.first, value_at(c.first), c.last, value_at(c.last),
                  step_of(c.low, latest=False), c.low, step_of(c.high, latest=True), c.high,
                  c.size)
