"""A sweep's result: one summary figure of each job against one axis of the sweep, one line
per combination of the other axes (e.g. final loss against lr, one line per optimizer).

Jobs that differ only by ``seed`` (when ``seed`` is an axis but not the one plotted) share
a point: the mean of their values, with their min–max as an error bar.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from matplotlib.figure import Figure

from optimlab.service.plots import style
from optimlab.service.plots.render import new_figure

SEED = "seed"
MISSING_COLOUR = "tab:red"


@dataclass(frozen=True)
class SweepPoint:
    axes: Mapping[str, Any]  # the job's sweep point, e.g. {"optimizer.lr": 0.01}
    value: float | None  # None: no finite value (diverged, or not finished)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def axis_names(points: Sequence[SweepPoint]) -> list[str]:
    """Every axis, in the order the points name them."""
    return list(dict.fromkeys(name for p in points for name in p.axes))


def default_x(points: Sequence[SweepPoint]) -> str | None:
    """The first axis whose values are all numbers (not the seed), else the first axis."""
    names = axis_names(points)
    numeric = [n for n in names if n != SEED and all(is_number(p.axes.get(n)) for p in points)]
    candidates = numeric or [n for n in names if n != SEED] or names
    return candidates[0] if candidates else None


def draw_sweep(points: Sequence[SweepPoint], *, x: str, metric: str, log: bool | None = None,
               title: str = "") -> Figure:
    figure = new_figure()
    ax = figure.add_subplot()
    others = [n for n in axis_names(points) if n not in (x, SEED)]
    numeric = all(is_number(p.axes.get(x)) for p in points)
    categories = list(dict.fromkeys(_key(p.axes.get(x)) for p in points))

    def position(value: Any) -> float:
        return float(value) if numeric else float(categories.index(_key(value)))

    if style.use_log(log, [metric], [p.value for p in points]):
        ax.set_yscale("log")
    lines = _lines(points, others)
    handles: list[Any] = []
    labels: list[str] = []
    for (fields, members), colour in zip(lines.items(), style.colours(len(lines)), strict=True):
        handle = _draw_line(ax, members, x=x, position=position, colour=colour)
        if handle is not None:
            handles.append(handle)
            labels.append(style.describe(dict(fields)) if fields else metric)
    missing = [p for p in points if not _finite(p.value)]
    if missing:
        # Drawn along the top edge: these runs have no value to put on the y axis.
        xs = [position(p.axes.get(x)) for p in missing]
        handles.append(ax.scatter(xs, [0.97] * len(xs), marker="x", color=MISSING_COLOUR,
                                  transform=ax.get_xaxis_transform(), zorder=3))
        labels.append("no value (diverged or not finished)")
    if numeric and style.spans_decades([p.axes.get(x) for p in points]):
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(range(len(categories)),
                      [style.format_value(orjson.loads(c)) for c in categories])
    if not points:
        style.empty_note(ax, "this sweep has no jobs")
    elif len(missing) == len(points):
        style.empty_note(ax, f"no job has a finite {metric} yet")
    ax.set_xlabel(x)
    ax.set_ylabel(metric)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(title or f"{metric} against {x}", loc="left", fontsize="medium",
                 fontweight="bold")
    if len(handles) > 1 or missing:
        style.legend(ax, handles, labels)
    return figure


def _key(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _lines(points: Sequence[SweepPoint],
           others: list[str]) -> dict[tuple[tuple[str, Any], ...], list[SweepPoint]]:
    lines: dict[str, tuple[tuple[tuple[str, Any], ...], list[SweepPoint]]] = {}
    for point in points:
        fields = tuple((name, point.axes.get(name)) for name in others)
        lines.setdefault(_key(fields), (fields, []))[1].append(point)
    return dict(lines.values())


def _draw_line(ax: Any, members: list[SweepPoint], *, x: str, position: Callable[[Any], float],
               colour: Any) -> Any | None:
    by_x: dict[float, list[float]] = {}
    for point in members:
        value = point.value
        if value is not None and math.isfinite(value):
            by_x.setdefault(position(point.axes.get(x)), []).append(value)
    if not by_x:
        return None
    xs = sorted(by_x)
    means = [statistics.fmean(by_x[v]) for v in xs]
    (line,) = ax.plot(xs, means, marker="o", markersize=4, color=colour, linewidth=1.4)
    spread = [(v, by_x[v]) for v in xs if len(by_x[v]) > 1]
    if spread:
        centres = [statistics.fmean(vals) for _, vals in spread]
        below = [c - min(vals) for c, (_, vals) in zip(centres, spread, strict=True)]
        above = [max(vals) - c for c, (_, vals) in zip(centres, spread, strict=True)]
        ax.errorbar([v for v, _ in spread], centres, yerr=[below, above], fmt="none",
                    ecolor=colour, elinewidth=1, capsize=3)
    return line
