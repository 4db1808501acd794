"""Every data kind of the job spec becomes a :class:`Dataset` of CPU tensors.

- ``inline``: the spec's columns and targets as float32, names and order kept; the task is
  unknown (the loss decides).
- ``synthetic``: generated from the job's seed alone (no global random state), in float64,
  then stored as float32. Inputs are columns ``x0 .. x{F-1}`` of shape ``[N]``.

  - ``linear``: ``X ~ N(0, 1)`` ``[N, F]``, weights ``w ~ N(0, 1)`` ``[F]`` and bias
    ``b ~ N(0, 1)`` from the seed, ``y = X @ w + b + noise * N(0, 1)``.
  - ``nonlinear``: ``X ~ N(0, 1)``, ``y = sum_j sin(2 x_j) + 0.5 * x_0**2 + noise * N(0, 1)``.
  - ``blobs``: :func:`sklearn.datasets.make_blobs` (``classes`` centres in ``features``
    dimensions, cluster std 1), then ``noise * N(0, 1)`` added to every input value.
  - ``moons`` / ``circles``: :func:`sklearn.datasets.make_moons` /
    :func:`~sklearn.datasets.make_circles` (``factor=0.5``) with ``noise``; two classes in
    two features.
  - ``spirals``: ``classes`` arms in two features; a point of arm ``k`` at ``t ~ U(0, 1)``
    is ``t * (cos a, sin a)`` with ``a = 2 pi k / classes + 3 pi t``, plus
    ``noise * N(0, 1)``; rows shuffled.

  The regressions and spirals draw from ``numpy.random.default_rng(seed)``; the sklearn
  generators get ``numpy.random.RandomState(seed)`` (so they equal ``make_moons(...,
  random_state=seed)``) for seeds below 2**32, ``RandomState(MT19937(seed))`` above.
  Regression targets are float32 ``[N]``; class labels are int64 ``[N]``.
- ``sklearn``: the data sets scikit-learn ships (no network): inputs ``x0 ..``, int64
  labels (or float32 targets for ``diabetes``); ``digits`` has ``image_shape`` (1, 8, 8).
- ``upload``: read through the :class:`DatasetSource` the caller provides.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import torch

from optimlab.worker.engine.data.dataset import Dataset, DatasetSource
from optimlab.worker.spec import (
    Data,
    InlineData,
    NumberArray,
    SklearnData,
    SklearnName,
    SyntheticData,
    UploadData,
)
from optimlab.worker.spec_errors import Loc, SpecError

# samples * features a synthetic data set may have (80 MB of float32).
MAX_SYNTHETIC_VALUES = 20_000_000

FloatArray = npt.NDArray[np.float64]


def load_dataset(data: Data | None, *, seed: int, source: DatasetSource | None) -> Dataset:
    """The rows ``data`` describes (an empty data set for None)."""
    if data is None:
        return Dataset(columns={}, targets=None)
    if isinstance(data, InlineData):
        return _inline(data)
    if isinstance(data, SyntheticData):
        return _synthetic(data, seed=seed)
    if isinstance(data, SklearnData):
        return _sklearn(data.name)
    if isinstance(data, UploadData):
        if source is None:
            raise SpecError(("data", "dataset_id"), "uploaded data sets need the service")
        return source.load(data.dataset_id)
    raise AssertionError(f"unknown data kind {data!r}")


# --- inline ---------------------------------------------------------------------------------


def to_tensor(value: NumberArray, *, loc: Loc) -> torch.Tensor:
    try:
        return torch.tensor(value, dtype=torch.float32)
    except (ValueError, TypeError) as exc:
        raise SpecError(loc, f"not a rectangular array of numbers ({exc})") from None


def _inline(data: InlineData) -> Dataset:
    columns = {name: to_tensor(column, loc=("data", "inputs", name))
               for name, column in data.inputs.items()}
    targets = None if data.targets is None else to_tensor(data.targets, loc=("data", "targets"))
    _check_rows(columns, targets)
    return Dataset(columns=columns, targets=targets)


def _check_rows(columns: Mapping[str, torch.Tensor], targets: torch.Tensor | None) -> None:
    """Every column and the targets have the same number of rows, at least one."""
    named: dict[Loc, torch.Tensor] = {("data", "inputs", name): t for name, t in columns.items()}
    if targets is not None:
        named["data", "targets"] = targets
    sizes = {loc: (t.shape[0] if t.dim() else 0) for loc, t in named.items()}
    empty = next((loc for loc, size in sizes.items() if size == 0), None)
    if empty is not None:
        raise SpecError(empty, "data needs at least one row")
    if len(set(sizes.values())) > 1:
        described = ", ".join(f"{'.'.join(map(str, loc))}: {size}" for loc, size in sizes.items())
        raise SpecError(("data",), f"columns have different numbers of rows ({described})")


# --- synthetic ------------------------------------------------------------------------------


def _synthetic(data: SyntheticData, *, seed: int) -> Dataset:
    n, f = data.samples, data.features
    if data.generator in ("moons", "circles", "spirals"):
        if f != 2:
            raise SpecError(("data", "features"),
                            f"{data.generator} data has exactly 2 features, not {f}")
        f = 2
    if n * f > MAX_SYNTHETIC_VALUES:
        raise SpecError(("data", "samples"), f"samples * features = {n * f} exceeds the limit "
                                             f"of {MAX_SYNTHETIC_VALUES} values")
    if data.generator in ("moons", "circles") and "classes" in data.model_fields_set \
            and data.classes != 2:
        raise SpecError(("data", "classes"),
                        f"{data.generator} data has exactly 2 classes, not {data.classes}")

    if data.generator in ("linear", "nonlinear"):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n, f))
        if data.generator == "linear":
            w = rng.standard_normal(f)
            b = rng.standard_normal()
            y = x @ w + b
        else:
            y = np.sin(2.0 * x).sum(axis=1) + 0.5 * x[:, 0] ** 2
        y = y + data.noise * rng.standard_normal(n)
        return Dataset(columns=_columns(x),
                       targets=torch.tensor(y, dtype=torch.float32), task="regression")

    if data.generator == "spirals":
        x, labels = _spirals(n, data.classes, data.noise, seed)
        classes = data.classes
    else:
        from sklearn import datasets

        state = _random_state(seed)
        if data.generator == "blobs":
            x, labels = datasets.make_blobs(n_samples=n, n_features=f, centers=data.classes,
                                            random_state=state)
            x = x + data.noise * state.standard_normal(x.shape)
            classes = data.classes
        elif data.generator == "moons":
            x, labels = datasets.make_moons(n_samples=n, noise=data.noise, random_state=state)
            classes = 2
        else:
            x, labels = datasets.make_circles(n_samples=n, noise=data.noise, factor=0.5,
                                              random_state=state)
            classes = 2
    return Dataset(columns=_columns(x), targets=torch.tensor(labels, dtype=torch.int64),
                   task="classification", classes=classes)


def _random_state(seed: int) -> np.random.RandomState:
    if seed < 2**32:
        return np.random.RandomState(seed)
    return np.random.RandomState(np.random.MT19937(seed))


def _spirals(n: int, arms: int, noise: float,
             seed: int) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n, dtype=np.int64) % arms
    t = rng.uniform(0.0, 1.0, n)
    angle = 2.0 * math.pi * labels / arms + 3.0 * math.pi * t
    x = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1)
    x = x + noise * rng.standard_normal((n, 2))
    order = rng.permutation(n)
    return x[order], labels[order]


def _columns(x: npt.NDArray[np.floating]) -> dict[str, torch.Tensor]:
    """``x0 .. x{F-1}``: the columns of ``x`` [N, F], each [N] float32 (a copy)."""
    return {f"x{j}": torch.tensor(x[:, j], dtype=torch.float32) for j in range(x.shape[1])}


# --- scikit-learn's bundled data sets -------------------------------------------------------


@functools.cache
def _sklearn_arrays(name: SklearnName) -> tuple[FloatArray, npt.NDArray[np.generic]]:
    """(inputs [N, F], targets [N]), read once per process; read-only, never handed out."""
    from sklearn import datasets

    loaders = {"digits": datasets.load_digits, "iris": datasets.load_iris,
               "wine": datasets.load_wine, "breast_cancer": datasets.load_breast_cancer,
               "diabetes": datasets.load_diabetes}
    bunch = loaders[name]()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _sklearn(name: SklearnName) -> Dataset:
    x, y = _sklearn_arrays(name)
    if name == "diabetes":
        return Dataset(columns=_columns(x), targets=torch.tensor(y, dtype=torch.float32),
                       task="regression")
    return Dataset(columns=_columns(x), targets=torch.tensor(y, dtype=torch.int64),
                   task="classification", classes=int(np.unique(y).size),
                   image_shape=(1, 8, 8) if name == "digits" else None)
