"""The landscape: the objective on a grid through the engine's compiler, paths over it."""

from __future__ import annotations

import math
import warnings

import pytest
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.transforms import BboxBase

from optimlab.service.plots.landscape import (
    LandscapeError,
    Objective,
    Path,
    draw_landscape,
    evaluate_grid,
    legend_columns,
    plot_range,
)
from optimlab.service.plots.render import to_bytes
from optimlab.worker.engine.expression import parse_expression
from tests.service.plots.images import png_size, svg_texts

ROSENBROCK = "(1 - x)**2 + 100*(y - x**2)**2"


# What GET /v1/compare/landscape.png labels the README's four Rosenbrock jobs with (the
# fields that differ between examples/rosenbrock_*.json).
FOUR_LABELS = [
    "optimizer.name=SGD, optimizer.lr=0.001",
    "optimizer.name=SGD, optimizer.lr=0.001, optimizer.momentum=0.9",
    "optimizer.name=SGD, optimizer.lr=0.001, optimizer.momentum=0.9, optimizer.nesterov=True",
    "optimizer.name=Adam, optimizer.lr=0.02",
]


def objective(source: str = ROSENBROCK) -> Objective:
    return Objective(parse_expression(source, allowed_names=["x", "y"]), "x", "y")


def the_legend(figure: Figure) -> Legend:
    """The figure's one legend (a figure legend, or one of its first axes)."""
    legends = [*figure.legends, *filter(None, [figure.axes[0].get_legend()])]
    assert len(legends) == 1
    return legends[0]


def figure_legend_texts(figure: Figure) -> list[str]:
    return [t.get_text() for t in the_legend(figure).get_texts()]


def valley_paths(labels: list[str]) -> list[Path]:
    """Paths along Rosenbrock's valley from (-1.5, 2), each ending somewhere else."""
    paths = []
    for k, label in enumerate(labels):
        xs = [-1.5 + (2.5 * j / 20) * (k + 1) / len(labels) for j in range(21)]
        paths.append(Path(label, xs, [x**2 for x in xs]))
    return paths


def rendered_layout(figure: Figure) -> tuple[BboxBase, BboxBase, list[str]]:
    """Render as the API does; the figure's box, its main axes' box and the warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        png_size(to_bytes(figure, "png"))
    return figure.bbox, figure.axes[0].get_window_extent(), [str(w.message) for w in caught]


def test_the_range_covers_the_paths_with_a_margin() -> None:
    x_range, y_range = plot_range([Path("a", [-1.5, 1.0], [2.0, 1.0]),
                                   Path("b", [0.0, math.nan], [0.0, None])])
    assert x_range == pytest.approx((-1.5 - 0.5, 1.0 + 0.5))
    assert y_range == pytest.approx((0.0 - 0.4, 2.0 + 0.4))
    assert plot_range([Path("still", [2.0], [2.0])]) == ((1.6, 2.4), (1.6, 2.4))


def test_the_grid_holds_the_objective() -> None:
    grid_x, grid_y, z = evaluate_grid(objective(), (-2.0, 2.0), (-1.0, 3.0), resolution=5)
    assert z.shape == (5, 5)
    for i, j in ((0, 0), (2, 3), (4, 1)):
        x, y = grid_x[i, j], grid_y[i, j]
        assert z[i, j] == pytest.approx((1 - x) ** 2 + 100 * (y - x**2) ** 2)
    _, _, logs = evaluate_grid(objective("log(x) + y"), (-1.0, 1.0), (0.0, 1.0), resolution=3)
    assert math.isnan(logs[0, 0])  # log of a negative: a hole, not an error


def test_sum_and_mean_are_of_one_point_as_in_training() -> None:
    # Each parameter is one number: sum(x) is x, not the sum over the grid.
    grid_x, grid_y, z = evaluate_grid(objective("sum(x**2) + mean(y)"), (0.0, 1.0),
                                      (0.0, 2.0), resolution=3)
    assert z.ravel().tolist() == pytest.approx((grid_x**2 + grid_y).ravel().tolist())


def test_an_objective_that_cannot_be_evaluated_is_refused() -> None:
    mismatched = Objective(parse_expression("x + z", allowed_names=["x", "z"]), "x", "y")
    with pytest.raises(LandscapeError, match="cannot be evaluated"):
        evaluate_grid(mismatched, (0.0, 1.0), (0.0, 1.0), resolution=3)


def test_paths_are_drawn_over_contours_with_a_legend() -> None:
    paths = [Path("optimizer.name=SGD", [-1.5, -1.0, 0.0], [2.0, 1.0, 0.1]),
             Path("optimizer.name=Adam", [-1.5, 0.5, 1.0], [2.0, 0.3, 1.0])]
    figure = draw_landscape(objective(), paths, resolution=60)
    ax = figure.axes[0]
    assert figure_legend_texts(figure) == [
        "optimizer.name=SGD", "optimizer.name=Adam", "start", "end"]
    assert len(figure.axes) == 2  # the colour bar
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x", "y")
    assert "optimizer.name=Adam" in svg_texts(to_bytes(figure, "svg"))
    assert png_size(to_bytes(figure, "png"))


def test_an_objective_below_zero_is_shifted_for_its_log_levels() -> None:
    figure = draw_landscape(objective("x**2 + y**2 - 3"), [Path("p", [1.0, 0.1], [1.0, 0.1])],
                            resolution=30)
    assert figure.axes[1].get_ylabel().startswith("objective − (")


@pytest.mark.parametrize("labels", [
    FOUR_LABELS,
    FOUR_LABELS[:1],
    [f"optimizer.lr={0.001 * k:g}, optimizer.momentum=0.{k}" for k in range(1, 10)],
    [label + ", schedule.name=CosineAnnealingLR, schedule.T_max=2000, seed=12345"
     for label in FOUR_LABELS],
], ids=["readme-four", "one", "nine-short", "four-very-long"])
def test_the_axes_and_the_whole_legend_fit_the_figure(labels: list[str]) -> None:
    figure = draw_landscape(objective(), valley_paths(labels), resolution=40)

    frame, axes, warned = rendered_layout(figure)

    # no "constrained_layout not applied because axes sizes collapsed", nor anything else
    assert warned == []
    # the landscape keeps most of the picture instead of collapsing into a strip
    assert axes.width >= 0.6 * frame.width
    assert axes.height >= 0.5 * frame.height
    box = the_legend(figure).get_window_extent()
    assert frame.x0 <= box.x0
    assert box.x1 <= frame.x1
    assert frame.y0 <= box.y0
    assert box.y1 <= frame.y1
    assert box.y1 <= axes.y0  # below the axes, never over the landscape
    texts = figure_legend_texts(figure)
    assert [t.replace("\n", " ") for t in texts] == [*labels, "start", "end"]


def test_the_readme_jobs_get_an_axes_as_large_as_one_job() -> None:
    one = rendered_layout(draw_landscape(objective(), valley_paths(FOUR_LABELS[:1]),
                                         resolution=40))[1]
    four = rendered_layout(draw_landscape(objective(), valley_paths(FOUR_LABELS),
                                          resolution=40))[1]
    # the legend's extra rows make the figure taller, not the landscape smaller
    assert four.width == pytest.approx(one.width, rel=0.02)
    assert four.height == pytest.approx(one.height, rel=0.05)


@pytest.mark.parametrize(("labels", "columns"), [
    (["a", "start", "end"], 3),
    (["x" * 40, "start", "end"], 2),
    (["x" * 40, "y" * 40, "start", "end"], 2),
    (["x" * 50, "start", "end"], 1),
    (["start", "end"], 2),
])
def test_legend_columns_fit_the_longest_label(labels: list[str], columns: int) -> None:
    assert legend_columns(labels) == columns
