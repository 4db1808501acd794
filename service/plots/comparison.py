"""Several jobs' histories of one metric on shared step buckets.

A seed group (jobs equal but for the seed) is one line, the mean of its members, with the
band across them and each member as a thin line; a job alone is one line with its own
buckets' min–max as the band. Legends say what differs between the curves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from optimlab.service.plots import style
from optimlab.service.plots.render import new_figure


@dataclass(frozen=True)
class Curve:
    label: str
    mean: style.Values
    low: style.Values
    high: style.Values
    members: Sequence[style.Values] = ()  # the seeds' own curves, for a group

    def all_values(self) -> list[float | None]:
        return [*self.mean, *self.low, *self.high, *(v for m in self.members for v in m)]


def draw_comparison(starts: Sequence[int], bucket_width: int, curves: Sequence[Curve], *,
                    metric: str, log: bool | None = None, title: str = "",
                    band_name: str = "min–max") -> Figure:
    figure = new_figure()
    ax = figure.add_subplot()
    x = np.asarray(starts, dtype=np.float64) + (bucket_width - 1) / 2
    values = [v for c in curves for v in c.all_values()]
    if style.use_log(log, [metric], values):
        ax.set_yscale("log")
    handles: list[Any] = []
    labels: list[str] = []
    for curve, colour in zip(curves, style.colours(len(curves)), strict=True):
        line = _draw_curve(ax, x, curve, colour=colour, shade=bool(curve.members)
                           or bucket_width > 1)
        if line is not None:
            handles.append(line)
            labels.append(curve.label)
    if not style.finite(values):
        style.empty_note(ax, f"no finite {metric} values recorded yet")
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric)
    ax.grid(True, which="major", alpha=0.3)
    if len(x):
        first, last = starts[0], starts[-1] + bucket_width - 1
        ax.set_xlim(first, max(last, first + 1))
    jobs = sum(max(1, len(c.members)) for c in curves)
    ax.set_title(title or f"{metric} of {jobs} job{'s' if jobs != 1 else ''}", loc="left",
                 fontsize="medium", fontweight="bold")
    if any(c.members for c in curves):
        ax.set_title(f"groups: mean over seeds, band {band_name}", loc="right",
                     fontsize="small", color="0.35")
    style.legend(ax, handles, labels)
    return figure


def _draw_curve(ax: Any, x: style.FloatArray, curve: Curve, *, colour: Any,
                shade: bool) -> Any | None:
    mean = style.as_array(curve.mean)
    present = ~np.isnan(mean)
    if not present.any():
        return None
    for member in curve.members:
        own = style.as_array(member)
        shown = ~np.isnan(own)
        ax.plot(x[shown], own[shown], color=colour, linewidth=0.6, alpha=0.35)
    width = 2.0 if curve.members else 1.4
    (line,) = ax.plot(x[present], mean[present], color=colour, linewidth=width)
    if shade:
        low, high = style.as_array(curve.low), style.as_array(curve.high)
        ax.fill_between(x[present], low[present], high[present], color=colour, alpha=0.18,
                        linewidth=0)
    if present.sum() == 1:
        ax.plot(x[present], mean[present], "o", color=colour)
    return line
