"""The loss landscape of a two-parameter objective, with optimizers' paths drawn over it.

The objective is the job's own expression, compiled by the engine's safe expression
compiler and evaluated on a grid of tensors: the same function the optimizer minimised,
with nothing passed to ``eval``. The grid covers the paths plus a margin; contour levels
are spaced evenly in log scale, so both the valley floor and the walls show.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import LogFormatterSciNotation, LogLocator

from optimlab.service.plots import style
from optimlab.service.plots.render import new_figure
from optimlab.worker.engine.expression import Expression

MARGIN = 0.2  # of each side's span, added around the paths
LEVELS = 25
DEPTH = 1e-6  # the lowest level, relative to the highest: log levels need a bottom
RESOLUTION = 200
WIDTH, HEIGHT = 7.2, 6.0  # inches, without the legend
LEGEND_LINE = 0.22  # inches per line of legend text ("small" type, with spacing)
LEGEND_CHARS = 90  # characters of "small" type a line of the legend holds in WIDTH
Range = tuple[float, float]


class LandscapeError(ValueError):
    """The objective cannot be drawn on a grid (it reduces over its input, or fails)."""


@dataclass(frozen=True)
class Objective:
    expression: Expression
    x: str  # the parameter on the horizontal axis
    y: str


@dataclass(frozen=True)
class Path:
    label: str
    xs: style.Values  # the parameters after each (downsampled) step, the start first
    ys: style.Values


def plot_range(paths: Sequence[Path]) -> tuple[Range, Range]:
    """The paths' extents (finite points only) plus a margin; a span of zero gets width."""
    def extent(values: list[float]) -> Range:
        if not values:
            return -1.0, 1.0
        lo, hi = min(values), max(values)
        span = hi - lo if hi > lo else max(abs(lo), 1.0)
        return lo - MARGIN * span, hi + MARGIN * span

    xs, ys = [], []
    for path in paths:
        for x, y in zip(path.xs, path.ys, strict=True):
            if x is not None and y is not None and math.isfinite(x) and math.isfinite(y):
                xs.append(x)
                ys.append(y)
    return extent(xs), extent(ys)


def evaluate_grid(objective: Objective, x_range: Range, y_range: Range,
                  resolution: int = RESOLUTION) -> tuple[style.FloatArray, style.FloatArray,
                                                        style.FloatArray]:
    """(X, Y, Z) on a ``resolution`` x ``resolution`` grid; non-finite Z are NaN.

    The expression is mapped over the grid's points with ``vmap``: each evaluation sees one
    number per parameter, as training did, so ``sum(x)`` or ``mean(x)`` mean what they
    meant there (the number itself) instead of reducing over the whole grid.
    """
    xs = torch.linspace(*x_range, resolution, dtype=torch.float64)
    ys = torch.linspace(*y_range, resolution, dtype=torch.float64)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")

    def at(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        value = objective.expression.evaluate({objective.x: x, objective.y: y})
        return torch.as_tensor(value, dtype=torch.float64)

    try:
        with torch.no_grad():
            z = torch.func.vmap(at)(grid_x.reshape(-1), grid_y.reshape(-1))
    except (ValueError, ArithmeticError, RuntimeError, KeyError, TypeError) as exc:
        raise LandscapeError(f"the objective cannot be evaluated on a grid: {exc}") from None
    if z.numel() != grid_x.numel():
        raise LandscapeError("the objective is not one number at each point")
    values = z.reshape(grid_x.shape).numpy().copy()
    values[~np.isfinite(values)] = np.nan
    return grid_x.numpy(), grid_y.numpy(), values


def draw_landscape(objective: Objective, paths: Sequence[Path], *,
                   resolution: int = RESOLUTION, title: str = "") -> Figure:
    x_range, y_range = plot_range(paths)
    grid_x, grid_y, z = evaluate_grid(objective, x_range, y_range, resolution)
    labels = [_wrapped(path.label) for path in paths]
    columns = legend_columns([*labels, "start", "end"])
    rows = _legend_lines(labels, columns)
    # The legend goes below the axes (inside, it would hide part of the landscape or of a
    # path), in rows of its own: the figure grows by their height so the axes keep theirs.
    figure = new_figure(WIDTH, HEIGHT + LEGEND_LINE * rows if paths else HEIGHT)
    ax = figure.add_subplot()
    _contours(figure, ax, grid_x, grid_y, z)
    handles: list[Any] = []
    shown: list[str] = []
    colours = style.colours(len(paths))
    for i, (path, label, colour) in enumerate(zip(paths, labels, colours, strict=True)):
        # Paths often share a stretch (the valley floor): each is drawn thinner than the one
        # before it, so the earlier ones still show as edges around the later ones.
        width = 1.5 + min(len(paths) - 1 - i, 4) * 1.5
        handle = _draw_path(ax, path, colour, width)
        if handle is not None:
            handles.append(handle)
            shown.append(label)
    if paths:
        handles += [Line2D([], [], marker="o", linestyle="", markerfacecolor="white",
                           markeredgecolor="black"),
                    Line2D([], [], marker="*", linestyle="", markersize=11,
                           markerfacecolor="0.6", markeredgecolor="black")]
        shown += ["start", "end"]
    ax.set_xlim(*x_range)
    ax.set_ylim(*y_range)
    ax.set_xlabel(objective.x)
    ax.set_ylabel(objective.y)
    ax.set_title(title or objective.expression.source, loc="left", fontsize="medium",
                 fontweight="bold")
    if handles:
        # A figure legend "outside": constrained layout makes room for it below the axes
        # and the colour bar, where an axes legend anchored outside would be cut off.
        figure.legend(handles, shown, loc="outside lower center", ncols=columns,
                      fontsize="small", frameon=False)
    return figure


def legend_columns(labels: Sequence[str]) -> int:
    """As many columns (at most three) as fit the figure's width side by side."""
    longest = max((len(line) for label in labels for line in label.splitlines()), default=0)
    for columns in (3, 2):
        if len(labels) >= columns and longest * columns <= LEGEND_CHARS:
            return columns
    return 1


def _wrapped(label: str) -> str:
    """A long label on several lines, broken after the commas between its fields."""
    if len(label) <= LEGEND_CHARS:
        return label
    return "\n".join(textwrap.wrap(label, LEGEND_CHARS, break_on_hyphens=False))


def _legend_lines(labels: Sequence[str], columns: int) -> int:
    """Lines of text the legend takes: its rows, each as tall as its tallest label."""
    entries = [label.count("\n") + 1 for label in labels] + [1, 1]  # start, end
    return sum(max(entries[row:row + columns]) for row in range(0, len(entries), columns))


def _contours(figure: Figure, ax: Any, grid_x: style.FloatArray, grid_y: style.FloatArray,
              z: style.FloatArray) -> None:
    present = z[np.isfinite(z)]
    if present.size == 0:
        style.empty_note(ax, "the objective is not finite anywhere here")
        return
    lowest, highest = float(present.min()), float(present.max())
    if highest == lowest:
        style.empty_note(ax, f"the objective is flat here ({lowest:.4g})")
        return
    label = "objective"
    if lowest <= 0:
        # Log levels need positive values: show the height above the grid's lowest point.
        z = z - lowest
        label = f"objective − ({lowest:.4g})"
        lowest, highest = 0.0, highest - lowest
    bottom = max(lowest, highest * DEPTH)
    levels = np.geomspace(bottom, highest, LEVELS)
    norm = LogNorm(vmin=bottom, vmax=highest)
    # Values below the lowest level would be left blank: they are drawn in its colour.
    filled = ax.contourf(grid_x, grid_y, np.clip(z, bottom, None), levels=levels, norm=norm,
                         cmap="Greys_r", alpha=0.85)
    ax.contour(grid_x, grid_y, z, levels=levels, colors="black", linewidths=0.4, alpha=0.25)
    # Ticks at powers of ten, not at the (irrational) level boundaries.
    figure.colorbar(filled, ax=ax, label=label, pad=0.02, ticks=LogLocator(),
                    format=LogFormatterSciNotation())


def _draw_path(ax: Any, path: Path, colour: Any, width: float) -> Any | None:
    xs, ys = style.as_array(path.xs), style.as_array(path.ys)
    present = ~(np.isnan(xs) | np.isnan(ys))
    if not present.any():
        return None
    xs, ys = xs[present], ys[present]
    # A white outline keeps the path visible on dark and light contours alike; outlines go
    # under every path's line, so a later path's outline never hides an earlier path.
    ax.plot(xs, ys, color="white", linewidth=width + 1.8, alpha=0.8, zorder=2.5,
            solid_capstyle="round")
    (line,) = ax.plot(xs, ys, color=colour, linewidth=width, zorder=3)
    ax.plot(xs[:1], ys[:1], marker="o", markersize=7, markerfacecolor="white",
            markeredgecolor="black", linestyle="", zorder=4)
    ax.plot(xs[-1:], ys[-1:], marker="*", markersize=13, markerfacecolor=colour,
            markeredgecolor="black", linestyle="", zorder=4)
    return line
