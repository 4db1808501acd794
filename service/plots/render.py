"""A matplotlib figure to SVG or PNG bytes, the same bytes for the same picture.

Figures are built with :class:`matplotlib.figure.Figure` directly, never through
``pyplot``: no global backend, no figure registry to leak from, nothing that needs a
display. ``savefig`` picks the Agg or SVG canvas for the format it is asked for.
"""

from __future__ import annotations

import io
import threading
from typing import Literal

import matplotlib as mpl
from matplotlib.figure import Figure

Format = Literal["svg", "png"]
MEDIA_TYPES: dict[Format, str] = {"svg": "image/svg+xml", "png": "image/png"}
DPI = 110
WIDTH, HEIGHT = 8.0, 4.8  # inches: 880 x 528 pixels at DPI

# Matplotlib's artists and font caches are not thread-safe, and the SVG ids' salt is a
# global rc setting; FastAPI renders in a thread pool, so drawing is one at a time.
_DRAWING = threading.Lock()
# Without the date and the software's version, and with a fixed salt for the SVG ids
# (random by default), the same figure gives the same bytes.
_METADATA: dict[Format, dict[str, str | None]] = {
    "svg": {"Date": None, "Creator": None},
    "png": {"Software": None},
}


def new_figure(width: float = WIDTH, height: float = HEIGHT) -> Figure:
    # Constrained layout keeps titles, twin axes' labels and outside legends in the frame.
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def to_bytes(figure: Figure, fmt: Format) -> bytes:
    if fmt not in MEDIA_TYPES:
        raise ValueError(f"unknown image format {fmt!r} (svg or png)")
    buffer = io.BytesIO()
    with _DRAWING, mpl.rc_context({
            "svg.hashsalt": "optimlab",
            # SVG text stays text: searchable, a fraction of the size of glyph outlines.
            "svg.fonttype": "none",
            # Log axes label 0.001 to 999 as plain numbers (6, not 6×10⁰), powers of ten beyond.
            "axes.formatter.min_exponent": 3}):
        figure.savefig(buffer, format=fmt, dpi=DPI, metadata=_METADATA[fmt],
                       facecolor="white")
    return buffer.getvalue()
