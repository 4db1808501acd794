"""Checks that bytes are the image they claim to be (SVG parses, PNG decodes), and
readers of what a figure drew."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from PIL import Image

SVG = "{http://www.w3.org/2000/svg}"


def svg_texts(data: bytes) -> list[str]:
    """Every text of a valid SVG document (matplotlib writes one <text> per label)."""
    root = ET.fromstring(data)  # noqa: S314 (our own output, not untrusted input)
    assert root.tag == f"{SVG}svg"
    return ["".join(t.itertext()).strip() for t in root.iter(f"{SVG}text")]


def png_size(data: bytes) -> tuple[int, int]:
    """The size of a valid PNG (decoded, not just sniffed)."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(data)) as image:
        image.verify()
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.format == "PNG"
        width, height = image.size
    assert width > 0
    assert height > 0
    return width, height


def legend_texts(ax: Axes) -> list[str]:
    legend = ax.get_legend()
    assert legend is not None
    return [t.get_text() for t in legend.get_texts()]


def xdata(line: Line2D) -> list[float]:
    return [float(v) for v in np.asarray(line.get_xdata(), dtype=np.float64)]


def ydata(line: Line2D) -> list[float]:
    return [float(v) for v in np.asarray(line.get_ydata(), dtype=np.float64)]
