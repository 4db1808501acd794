"""What every plot shares: colours, the log-scale rule, labels from spec fields, gaps."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib import colormaps
from matplotlib.axes import Axes

Values = Sequence[float | None]
FloatArray = npt.NDArray[np.float64]

MAX_LABEL_FIELDS = 4
MAX_VALUE_CHARS = 24
# Where the data run over a factor this large, a log axis shows them better than a linear one.
DECADE = 10.0


def colours(count: int) -> list[tuple[float, float, float, float]]:
    """Distinct colours: tab10 while it lasts, then evenly along viridis."""
    if count <= 10:
        return [colormaps["tab10"](i) for i in range(count)]
    cmap = colormaps["viridis"]
    return [cmap(i / max(count - 1, 1)) for i in range(count)]


def as_array(values: Values) -> FloatArray:
    """None (a bucket without a finite value) and non-finite numbers become NaN: a gap."""
    return np.array([math.nan if v is None or not math.isfinite(v) else v for v in values],
                    dtype=np.float64)


def finite(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def log_by_default(name: str) -> bool:
    """Losses and norms shrink by orders of magnitude; accuracies and rates do not."""
    return "loss" in name or name.endswith("norm")


def use_log(asked: bool | None, names: Iterable[str], values: Iterable[float | None]) -> bool:
    """``asked`` when given (a log axis still needs positive values), else the default rule."""
    present = finite(values)
    positive = bool(present) and min(present) > 0
    if asked is not None:
        return asked and positive
    return positive and all(log_by_default(n) for n in names)


def spans_decades(values: Iterable[float | None]) -> bool:
    present = finite(values)
    return bool(present) and min(present) > 0 and max(present) / min(present) >= DECADE


def format_value(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, str):
        text = value
    else:
        text = str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS - 1] + "…"


def describe(fields: Mapping[str, Any]) -> str:
    """``optimizer.name=Adam, optimizer.lr=0.01``: the fields that tell curves apart."""
    parts = [f"{key}={format_value(value)}" for key, value in fields.items()]
    if len(parts) > MAX_LABEL_FIELDS:
        parts = [*parts[:MAX_LABEL_FIELDS], f"+{len(parts) - MAX_LABEL_FIELDS} more"]
    return ", ".join(parts)


def empty_note(ax: Axes, text: str) -> None:
    """Say why an axis is blank rather than leave it blank."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center",
            color="0.4", fontsize="large")


def legend(ax: Axes, handles: list[Any], labels: list[str]) -> None:
    """Inside the axes while it is short; beside them when there are many curves."""
    if not handles:
        return
    if len(handles) <= 6:
        ax.legend(handles, labels, fontsize="small", loc="best", framealpha=0.85)
    else:
        ax.legend(handles, labels, fontsize="x-small", loc="upper left",
                  bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)
