"""The one shape data takes inside the engine."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, Protocol

import torch

Task = Literal["regression", "classification"]


@dataclass(frozen=True)
class Dataset:
    """Rows of named input columns and (optionally) targets.

    ``columns`` keep their order and names: an expression model refers to them by name
    (``u``, or ``x0``, ``x1``, ... for data sets with unnamed features); built-in models
    see :meth:`features`, the columns flattened and side by side. ``targets`` are float32
    (regression: ``[N]`` or ``[N, T]``) or int64 class labels ``[N]`` (classification).
    ``task`` is None where the data cannot tell (inline data: the loss decides).
    """

    columns: dict[str, torch.Tensor]
    targets: torch.Tensor | None
    task: Task | None = None
    classes: int | None = None
    image_shape: tuple[int, ...] | None = None  # (channels, height, width) of each row

    @property
    def rows(self) -> int:
        for tensor in (*self.columns.values(), self.targets):
            if tensor is not None:
                return int(tensor.shape[0]) if tensor.dim() else 0
        return 0

    def features(self) -> torch.Tensor:
        """All input columns as one float32 matrix ``[rows, features]``."""
        return torch.cat([c.reshape(c.shape[0], -1) for c in self.columns.values()], dim=1)

    def subset(self, rows: torch.Tensor) -> Dataset:
        """The given rows (an int64 index tensor), in that order."""
        return replace(
            self,
            columns={name: column[rows] for name, column in self.columns.items()},
            targets=None if self.targets is None else self.targets[rows])

    def to(self, device: torch.device | str) -> Dataset:
        return replace(
            self,
            columns={name: column.to(device) for name, column in self.columns.items()},
            targets=None if self.targets is None else self.targets.to(device))


class DatasetSource(Protocol):
    """Where uploaded data sets come from (the worker and the API read the database)."""

    def load(self, dataset_id: str) -> Dataset:
        """The uploaded data set; raise ``SpecError(("data", "dataset_id"), ...)`` if unknown."""
        ...
