"""Validation split and standardisation, exactly as a plain PyTorch script would do them.

For a data set of ``N`` rows, ``options`` (``val_fraction``, ``standardize``,
``standardize_targets``) and the job's ``seed``:

1. If ``val_fraction > 0``::

       perm = torch.randperm(N, generator=torch.Generator().manual_seed(seed))
       n_val = max(1, round(N * val_fraction))    # Python's round: halves to even
       # refused (data.val_fraction) unless n_val < N: at least one training row
       val_rows = perm[:n_val].sort().values       # both keep the original row order
       train_rows = perm[n_val:].sort().values
       train, val = dataset.subset(train_rows), dataset.subset(val_rows)

   otherwise ``train`` is the whole data set and there is no ``val``.
2. If ``standardize``: for every input column ``c`` (shape ``[N, ...]``), statistics of the
   *training* rows only::

       mean = c_train.mean(dim=0)
       std = c_train.std(dim=0, unbiased=False)
       std = torch.where(std > 0, std, 1.0)        # a constant feature is only centred
       c_train = (c_train - mean) / std
       c_val = (c_val - mean) / std

   Targets are left as they are.
3. If ``standardize_targets`` (regression targets only: float targets ``[N]`` or ``[N, T]``),
   the same for the targets, each target column on its own::

       mean = y_train.mean(dim=0)
       std = y_train.std(dim=0, unbiased=False)
       std = torch.where(std > 0, std, 1.0)
       y_train = (y_train - mean) / std
       y_val = (y_val - mean) / std

   Class labels (int64 targets, a classification data set) and data without targets are
   refused (``data.standardize_targets``); so is a classification loss on float targets,
   which the caller checks (:func:`optimlab.worker.engine.problem.prepare_data`).
4. With none of these (or ``options`` None) the data set is returned unchanged as ``train``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from optimlab.worker.engine.data.dataset import Dataset
from optimlab.worker.spec import DataOptions
from optimlab.worker.spec_errors import SpecError


@dataclass(frozen=True)
class Split:
    train: Dataset
    val: Dataset | None


def prepare_split(dataset: Dataset, options: DataOptions | None, *, seed: int) -> Split:
    """The training rows (and validation rows, if asked for), standardised if asked for."""
    if options is None:
        return Split(train=dataset, val=None)
    train, val = dataset, None
    if options.val_fraction > 0:
        train, val = _split(dataset, options.val_fraction, seed=seed)
    if options.standardize_targets:
        _check_regression_targets(dataset)
    if options.standardize:
        train, val = _standardize(train, val)
    if options.standardize_targets:
        train, val = _standardize_targets(train, val)
    return Split(train=train, val=val)


def _check_regression_targets(dataset: Dataset) -> None:
    targets = dataset.targets
    if targets is None:
        raise SpecError(("data", "standardize_targets"), "these data have no targets")
    if dataset.task == "classification" or not targets.is_floating_point():
        raise SpecError(("data", "standardize_targets"),
                        "the targets are class labels; only regression targets can be "
                        "standardised")


def _split(dataset: Dataset, fraction: float, *, seed: int) -> tuple[Dataset, Dataset]:
    n = dataset.rows
    n_val = max(1, round(n * fraction))
    if n_val >= n:
        raise SpecError(("data", "val_fraction"),
                        f"a validation split of {fraction} takes {n_val} of the {n} rows and "
                        "leaves none for training")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_rows = perm[:n_val].sort().values
    train_rows = perm[n_val:].sort().values
    return dataset.subset(train_rows), dataset.subset(val_rows)


def _standardize(train: Dataset, val: Dataset | None) -> tuple[Dataset, Dataset | None]:
    train_columns: dict[str, torch.Tensor] = {}
    val_columns: dict[str, torch.Tensor] = {}
    for name, column in train.columns.items():
        train_columns[name], scaled = _scaled(column, None if val is None
                                              else val.columns[name])
        if scaled is not None:
            val_columns[name] = scaled
    return (replace(train, columns=train_columns),
            None if val is None else replace(val, columns=val_columns))


def _standardize_targets(train: Dataset,
                         val: Dataset | None) -> tuple[Dataset, Dataset | None]:
    assert train.targets is not None
    train_targets, val_targets = _scaled(train.targets, None if val is None else val.targets)
    return (replace(train, targets=train_targets),
            None if val is None else replace(val, targets=val_targets))


def _scaled(train: torch.Tensor,
            val: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``train`` and ``val`` standardised with ``train``'s statistics, per feature."""
    mean = train.mean(dim=0)
    std = train.std(dim=0, unbiased=False)
    std = torch.where(std > 0, std, 1.0)
    return (train - mean) / std, None if val is None else (val - mean) / std
