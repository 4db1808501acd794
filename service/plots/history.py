"""One job's history: metric lines over steps, each bucket's min–max as a band, the
learning rate on a second axis when it varies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from optimlab.service.plots import style
from optimlab.service.plots.render import new_figure

LR_COLOUR = "0.45"


@dataclass(frozen=True)
class Band:
    """Per-bucket mean, min and max of one series (None: no finite value in the bucket)."""

    mean: style.Values
    low: style.Values
    high: style.Values

    def all_values(self) -> list[float | None]:
        return [*self.mean, *self.low, *self.high]


@dataclass(frozen=True)
class History:
    title: str
    starts: Sequence[int]  # the first step of each bucket
    bucket_width: int
    series: Mapping[str, Band]
    lr: Band | None = None
    subtitle: str = ""
    diverged_at: int | None = None
    notes: list[str] = field(default_factory=list)

    def positions(self) -> style.FloatArray:
        # A bucket's statistics describe its whole width: drawn at its middle.
        return np.asarray(self.starts, dtype=np.float64) + (self.bucket_width - 1) / 2


def draw_history(history: History, *, log: bool | None = None) -> Figure:
    figure = new_figure()
    ax = figure.add_subplot()
    x = history.positions()
    values = [v for band in history.series.values() for v in band.all_values()]
    if style.use_log(log, history.series, values):
        ax.set_yscale("log")
    handles: list[Any] = []
    labels: list[str] = []
    for (name, band), colour in zip(history.series.items(), style.colours(len(history.series)),
                                    strict=True):
        drawn = _draw_band(ax, x, band, colour=colour, shade=history.bucket_width > 1)
        if drawn is not None:
            handles.append(drawn)
            labels.append(name)
    if not style.finite(values):
        style.empty_note(ax, "no finite values recorded yet")
    if history.diverged_at is not None:
        marker = ax.axvline(history.diverged_at, color="tab:red", linestyle=":", linewidth=1.2)
        handles.append(marker)
        labels.append(f"diverged at step {history.diverged_at}")
    if history.lr is not None and _varies(history.lr):
        handles.append(_draw_lr(ax, x, history.lr))
        labels.append("lr (right axis)")
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(", ".join(history.series) if len(history.series) <= 3 else "value")
    ax.grid(True, which="major", alpha=0.3)
    if len(x):
        first, last = history.starts[0], history.starts[-1] + history.bucket_width - 1
        if history.diverged_at is not None:
            # The diverging step itself has no finite value: keep its marker off the frame.
            last = max(last, history.diverged_at) + max(1, (last - first) // 30)
        ax.set_xlim(first, max(last, first + 1))
    _titles(ax, history)
    style.legend(ax, handles, labels)
    return figure


def _draw_band(ax: Any, x: style.FloatArray, band: Band, *, colour: Any,
               shade: bool) -> Any | None:
    mean = style.as_array(band.mean)
    present = ~np.isnan(mean)
    if not present.any():
        return None
    # Series recorded every few steps (val_loss) leave empty buckets between their points:
    # the line joins the points it has rather than breaking at each gap.
    (line,) = ax.plot(x[present], mean[present], color=colour, linewidth=1.4)
    if shade:
        low, high = style.as_array(band.low), style.as_array(band.high)
        ax.fill_between(x[present], low[present], high[present], color=colour, alpha=0.2,
                        linewidth=0)
    if present.sum() == 1:
        ax.plot(x[present], mean[present], "o", color=colour)
    return line


def _varies(lr: Band) -> bool:
    present = style.finite(lr.all_values())
    return bool(present) and max(present) != min(present)


def _draw_lr(ax: Any, x: style.FloatArray, lr: Band) -> Any:
    twin = ax.twinx()
    # The metrics (and their legend) stay in front of the dashed lr line.
    ax.set_zorder(twin.get_zorder() + 1)
    ax.patch.set_visible(False)
    mean = style.as_array(lr.mean)
    present = ~np.isnan(mean)
    (line,) = twin.plot(x[present], mean[present], color=LR_COLOUR, linewidth=1.1,
                        linestyle="--")
    if style.spans_decades(lr.all_values()):
        twin.set_yscale("log")
    twin.set_ylabel("lr", color=LR_COLOUR)
    twin.tick_params(axis="y", colors=LR_COLOUR)
    return line


def _titles(ax: Any, history: History) -> None:
    ax.set_title(history.title, loc="left", fontsize="medium", fontweight="bold")
    lines = [history.subtitle, *history.notes]
    text = "\n".join(line for line in lines if line)
    if text:
        ax.set_title(text, loc="right", fontsize="small", color="0.35")
