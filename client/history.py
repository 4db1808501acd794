"""A job's metric histories as the caller asks: lists, numpy arrays or a pandas DataFrame."""

from __future__ import annotations

import importlib
from typing import Any, Literal

import numpy as np

from optimlab.client.errors import MissingDependency

Shape = Literal["lists", "numpy", "pandas"]
History = dict[str, dict[str, Any]]  # name -> {"steps", "values"[, "smoothed", "downsampled"]}


def shaped(series: list[dict[str, Any]], as_: Shape) -> Any:
    """The API's series in the shape asked for.

    ``lists``: ``{name: {"steps": [...], "values": [...]}}`` as the API sends them (None
    for NaN and infinity), with ``smoothed`` and ``downsampled`` when asked for;
    ``numpy``: the same with int64 steps and float64 values (NaN for None);
    ``pandas``: one DataFrame indexed by step, a column per series (and ``<name>_smoothed``
    with smoothing), NaN where a series has no point at a step.
    """
    if as_ == "lists":
        return {s["name"]: {k: v for k, v in s.items() if k != "name"} for s in series}
    if as_ == "numpy":
        return {s["name"]: _arrays(s) for s in series}
    if as_ == "pandas":
        return _frame(series)
    raise ValueError(f"as_ is 'lists', 'numpy' or 'pandas', not {as_!r}")


def floats(values: list[float | None]) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _arrays(series: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"steps": np.array(series["steps"], dtype=np.int64),
                           "values": floats(series["values"])}
    if "smoothed" in series:
        out["smoothed"] = floats(series["smoothed"] or [])
    if "downsampled" in series:
        out["downsampled"] = series["downsampled"]
    return out


def _frame(series: list[dict[str, Any]]) -> Any:
    try:
        pd = importlib.import_module("pandas")
    except ImportError as exc:
        raise MissingDependency("history(as_='pandas') needs pandas: "
                                "pip install 'optimlab[pandas]'") from exc
    columns: dict[str, Any] = {}
    for s in series:
        index = pd.Index(np.array(s["steps"], dtype=np.int64), name="step")
        columns[s["name"]] = pd.Series(floats(s["values"]), index=index)
        if "smoothed" in s:
            columns[f"{s['name']}_smoothed"] = pd.Series(floats(s["smoothed"] or []),
                                                         index=index)
    frame = pd.DataFrame(columns)
    frame.index.name = "step"
    return frame
