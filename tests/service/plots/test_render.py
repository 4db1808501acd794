"""Figures to bytes: valid SVG and PNG, the same bytes for the same figure."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from optimlab.service.plots.render import DPI, HEIGHT, WIDTH, new_figure, to_bytes
from tests.service.plots.images import png_size, svg_texts


def figure() -> Figure:
    fig = new_figure()
    ax = fig.add_subplot()
    ax.plot([0, 1, 2], [3.0, 1.0, 2.0], label="a line")
    ax.set_title("a title")
    return fig


def test_svg_is_a_document_with_its_text() -> None:
    texts = svg_texts(to_bytes(figure(), "svg"))
    assert "a title" in texts


def test_png_decodes_at_the_fixed_size() -> None:
    assert png_size(to_bytes(figure(), "png")) == (round(WIDTH * DPI), round(HEIGHT * DPI))


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_the_same_figure_gives_the_same_bytes(fmt: str) -> None:
    # No date, no version, no random SVG ids: a picture can be cached or diffed.
    first = to_bytes(figure(), fmt)  # type: ignore[arg-type]
    assert to_bytes(figure(), fmt) == first  # type: ignore[arg-type]


def test_svg_carries_no_date() -> None:
    assert b"<dc:date>" not in to_bytes(figure(), "svg")


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="gif"):
        to_bytes(figure(), "gif")  # type: ignore[arg-type]
