"""A job's history plot, drawn from per-bucket statistics."""

from __future__ import annotations

import math

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from optimlab.service.plots.history import Band, History, draw_history
from optimlab.service.plots.render import to_bytes
from tests.service.plots.images import legend_texts, png_size, svg_texts, xdata, ydata


def flat(values: list[float | None]) -> Band:
    return Band(mean=values, low=values, high=values)


def history(loss: list[float | None], lr: list[float | None] | None = None,
            **changes: object) -> History:
    fields: dict[str, object] = {
        "title": "a job", "starts": list(range(len(loss))), "bucket_width": 1,
        "series": {"loss": flat(loss)}, "lr": None if lr is None else flat(lr)}
    fields.update(changes)
    return History(**fields)  # type: ignore[arg-type]


def legend(figure: Figure) -> list[str]:
    return [text for ax in figure.axes if ax.get_legend() is not None
            for text in legend_texts(ax)]


def main_axes(figure: Figure) -> Axes:
    return figure.axes[0]


def test_a_positive_loss_is_log_scaled_and_a_negative_one_is_not() -> None:
    assert main_axes(draw_history(history([4.0, 2.0, 1.0]))).get_yscale() == "log"
    assert main_axes(draw_history(history([4.0, 0.0, -1.0]))).get_yscale() == "linear"
    assert main_axes(draw_history(history([4.0, 2.0, 1.0]), log=False)).get_yscale() == "linear"
    # Asked for, but impossible with a zero in the data: linear rather than a broken plot.
    assert main_axes(draw_history(history([4.0, 0.0]), log=True)).get_yscale() == "linear"


def test_lr_gets_a_second_axis_only_when_it_varies() -> None:
    varying = draw_history(history([4.0, 2.0, 1.0], lr=[0.1, 0.05, 0.01]))
    assert len(varying.axes) == 2
    assert "lr (right axis)" in legend(varying)
    constant = draw_history(history([4.0, 2.0, 1.0], lr=[0.1, 0.1, 0.1]))
    assert len(constant.axes) == 1
    assert "lr (right axis)" not in legend(constant)


def test_buckets_wider_than_a_step_get_a_min_max_band() -> None:
    band = Band(mean=[3.0, 2.0], low=[2.0, 1.0], high=[5.0, 3.0])
    wide = draw_history(history([None, None], series={"loss": band}, starts=[0, 10],
                                bucket_width=10))
    narrow = draw_history(history([3.0, 2.0]))
    assert len(main_axes(wide).collections) == 1
    assert len(main_axes(narrow).collections) == 0
    # Each bucket is drawn at its middle: steps 0-9 at 4.5.
    assert xdata(main_axes(wide).lines[0]) == [4.5, 14.5]


def test_a_diverged_run_with_nan_and_inf_is_drawn() -> None:
    diverged = history([10.0, 100.0, math.inf, math.nan, None], diverged_at=2,
                       series={"loss": Band([10.0, 100.0, math.inf, math.nan, None],
                                            [10.0, 100.0, -math.inf, None, None],
                                            [10.0, 100.0, math.nan, math.inf, None])})
    figure = draw_history(diverged)
    assert "diverged at step 2" in legend(figure)
    assert ydata(main_axes(figure).lines[0]) == [10.0, 100.0]
    assert "diverged at step 2" in svg_texts(to_bytes(figure, "svg"))
    assert png_size(to_bytes(figure, "png"))


def test_a_series_with_gaps_is_joined_and_an_empty_history_says_so() -> None:
    sparse = draw_history(history([None, 2.0, None, None, 1.0]))
    assert ydata(main_axes(sparse).lines[0]) == [2.0, 1.0]
    empty = draw_history(history([], series={}, starts=[]))
    assert "no finite values recorded yet" in svg_texts(to_bytes(empty, "svg"))
