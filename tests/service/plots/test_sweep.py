"""The sweep plot: a summary figure against one axis, one line per other combination."""

from __future__ import annotations

import pytest

from optimlab.service.plots.render import to_bytes
from optimlab.service.plots.sweep import SweepPoint, default_x, draw_sweep
from tests.service.plots.images import legend_texts, png_size, svg_texts, xdata, ydata


def grid() -> list[SweepPoint]:
    points = []
    for name in ("SGD", "Adam"):
        for lr in (0.001, 0.01, 0.1, 1.0):
            value = None if (name, lr) == ("SGD", 1.0) else lr * (2 if name == "SGD" else 1)
            points.append(SweepPoint({"optimizer.name": name, "optimizer.lr": lr}, value))
    return points


def test_the_default_x_is_the_first_numeric_axis() -> None:
    assert default_x(grid()) == "optimizer.lr"
    assert default_x([SweepPoint({"seed": 1, "optimizer.name": "SGD"}, 1.0)]) == \
        "optimizer.name"
    assert default_x([]) is None


def test_one_line_per_other_axis_log_x_and_a_mark_for_missing_values() -> None:
    figure = draw_sweep(grid(), x="optimizer.lr", metric="final_loss")
    ax = figure.axes[0]
    assert ax.get_xscale() == "log"
    assert ax.get_yscale() == "log"
    assert legend_texts(ax) == [
        "optimizer.name=SGD", "optimizer.name=Adam", "no value (diverged or not finished)"]
    sgd = ax.lines[0]
    assert xdata(sgd) == [0.001, 0.01, 0.1]
    texts = svg_texts(to_bytes(figure, "svg"))
    assert "optimizer.name=Adam" in texts
    assert "optimizer.lr" in texts
    assert png_size(to_bytes(figure, "png"))


def test_seeds_are_averaged_with_an_error_bar() -> None:
    points = [SweepPoint({"optimizer.lr": lr, "seed": seed}, lr + seed)
              for lr in (0.1, 0.2) for seed in (0, 1)]
    figure = draw_sweep(points, x="optimizer.lr", metric="final_loss")
    ax = figure.axes[0]
    assert ydata(ax.lines[0]) == pytest.approx([0.6, 0.7])
    assert ax.get_xscale() == "linear"  # 0.1 to 0.2 is not a decade
    assert ax.get_legend() is None  # one line: nothing to tell apart


def test_a_categorical_axis_gets_its_values_as_ticks() -> None:
    points = [SweepPoint({"optimizer.name": n}, v) for n, v in (("SGD", 2.0), ("Adam", 1.0))]
    figure = draw_sweep(points, x="optimizer.name", metric="final_loss")
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["SGD", "Adam"]
    assert "this sweep has no jobs" in svg_texts(
        to_bytes(draw_sweep([], x="", metric="final_loss"), "svg"))
