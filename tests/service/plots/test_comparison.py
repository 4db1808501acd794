"""The comparison plot: one curve per seed group, labelled by what differs."""

from __future__ import annotations

from optimlab.service.plots.comparison import Curve, draw_comparison
from optimlab.service.plots.render import to_bytes
from tests.service.plots.images import legend_texts, png_size, svg_texts, ydata


def curve(label: str, values: list[float | None], *members: list[float | None]) -> Curve:
    return Curve(label=label, mean=values, low=values, high=values, members=list(members))


def test_the_legend_names_the_differing_fields() -> None:
    figure = draw_comparison([0, 1, 2], 1, [
        curve("optimizer.name=Adam, optimizer.lr=0.01", [3.0, 2.0, 1.0]),
        curve("optimizer.name=SGD, optimizer.lr=0.1", [3.0, 2.5, 2.0])], metric="loss")
    assert legend_texts(figure.axes[0]) == [
        "optimizer.name=Adam, optimizer.lr=0.01", "optimizer.name=SGD, optimizer.lr=0.1"]
    assert figure.axes[0].get_yscale() == "log"
    texts = svg_texts(to_bytes(figure, "svg"))
    assert "optimizer.name=Adam, optimizer.lr=0.01" in texts
    assert png_size(to_bytes(figure, "png"))


def test_a_seed_group_is_a_thick_mean_over_thin_members_with_a_band() -> None:
    group = Curve(label="optimizer.lr=0.1 (2 seeds)", mean=[2.0, 1.5], low=[1.0, 1.0],
                  high=[3.0, 2.0], members=[[1.0, 1.0], [3.0, 2.0]])
    figure = draw_comparison([0, 1], 1, [group], metric="loss")
    ax = figure.axes[0]
    widths = sorted(line.get_linewidth() for line in ax.lines)
    assert widths == [0.6, 0.6, 2.0]
    assert len(ax.collections) == 1  # the band
    assert "groups: mean over seeds, band min–max" in svg_texts(to_bytes(figure, "svg"))


def test_a_metric_that_is_not_a_loss_stays_linear_and_gaps_are_skipped() -> None:
    figure = draw_comparison([0, 1, 2], 1, [curve("a", [0.5, None, 0.9])],
                             metric="val_accuracy")
    assert figure.axes[0].get_yscale() == "linear"
    assert ydata(figure.axes[0].lines[0]) == [0.5, 0.9]
