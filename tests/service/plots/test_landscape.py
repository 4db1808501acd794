"""The landscape: the objective on a grid through the engine's compiler, paths over it."""

from __future__ import annotations

import math

import pytest

from optimlab.service.plots.landscape import (
    LandscapeError,
    Objective,
    Path,
    draw_landscape,
    evaluate_grid,
    plot_range,
)
from optimlab.service.plots.render import to_bytes
from optimlab.worker.engine.expression import parse_expression
from tests.service.plots.images import legend_texts, png_size, svg_texts

ROSENBROCK = "(1 - x)**2 + 100*(y - x**2)**2"


def objective(source: str = ROSENBROCK) -> Objective:
    return Objective(parse_expression(source, allowed_names=["x", "y"]), "x", "y")


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
    assert legend_texts(ax) == [
        "optimizer.name=SGD", "optimizer.name=Adam", "start", "end"]
    assert len(figure.axes) == 2  # the colour bar
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x", "y")
    assert "optimizer.name=Adam" in svg_texts(to_bytes(figure, "svg"))
    assert png_size(to_bytes(figure, "png"))


def test_an_objective_below_zero_is_shifted_for_its_log_levels() -> None:
    figure = draw_landscape(objective("x**2 + y**2 - 3"), [Path("p", [1.0, 0.1], [1.0, 0.1])],
                            resolution=30)
    assert figure.axes[1].get_ylabel().startswith("objective − (")
