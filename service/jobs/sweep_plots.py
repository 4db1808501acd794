"""Gather a sweep's plot: one summary figure of every job against one of the sweep's axes."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from optimlab.service.db.sweep_points import sweep_points
from optimlab.service.jobs.callers import Caller
from optimlab.service.jobs.errors import InvalidQuery
from optimlab.service.jobs.listing import TEXT_FIELDS, InvalidSort, parse_sort
from optimlab.service.jobs.ownership import sweep_for
from optimlab.service.plots.sweep import SweepPoint, axis_names, default_x

DEFAULT_METRIC = "final_loss"


@dataclass(frozen=True)
class SweepPlot:
    points: list[SweepPoint]
    x: str
    metric: str
    title: str


def sweep_plot(*, db: Engine, caller: Caller, sweep_id: uuid.UUID,
               metric: str = DEFAULT_METRIC, x: str | None = None) -> SweepPlot:
    path = _metric_path(metric)
    with db.connect() as conn:
        sweep = sweep_for(conn, caller, sweep_id)
        rows = sweep_points(conn, sweep_id)
    points = [SweepPoint(axes=axes, value=_value(summary, path)) for axes, summary in rows]
    names = axis_names(points)
    if x is not None and x not in names:
        raise InvalidQuery("x", f"{x!r} is not an axis of this sweep; its axes: "
                                f"{', '.join(names) or 'none'}")
    chosen = x or default_x(points) or ""
    title = f"{sweep.name or f'sweep {sweep.id}'}: {metric} against {chosen}"
    return SweepPlot(points=points, x=chosen, metric=metric, title=title)


def _metric_path(metric: str) -> tuple[str, ...]:
    """A numeric summary field (``final_loss``, ``evaluation.val_accuracy``) as a path."""
    try:
        order = parse_sort(metric)
    except InvalidSort as exc:
        raise InvalidQuery("metric", str(exc).replace("cannot sort by", "cannot plot")) from None
    if order is None or order.descending or order.path[-1] in TEXT_FIELDS:
        raise InvalidQuery("metric", f"cannot plot {metric!r}; use a numeric summary field "
                                     "such as final_loss, best_loss or evaluation.val_loss")
    return order.path


def _value(summary: dict[str, Any] | None, path: tuple[str, ...]) -> float | None:
    node: Any = summary or {}
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, bool) or not isinstance(node, int | float) or not math.isfinite(node):
        return None
    return float(node)
