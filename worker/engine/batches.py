"""Which rows each step trains on.

Mini-batches come in exactly the order of ``DataLoader(dataset, batch_size,
shuffle=True, generator=torch.Generator().manual_seed(seed))`` iterated epoch
after epoch, so a job matches the plain training loop most people write.
Torch's own loader produces the indices, which keeps that true across torch
versions (it draws more from the generator than one ``randperm`` per epoch).

A resumed run goes on from the very batch it stopped at: the stream's state is the
generator's state at the start of the current epoch and the batches taken since, so
restoring it replays the epoch's draws and skips what was consumed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from optimlab.worker.engine.problem import Batch


class _RowIndices(Dataset[int]):
    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        return index


class BatchStream(Iterator[Batch]):
    """The rows of each step forever; ``None`` (no batch size) is the whole data set."""

    def __init__(self, size: int, batch_size: int | None, *, seed: int,
                 drop_last: bool = False, device: torch.device | str = "cpu") -> None:
        self.device = device
        self.generator = torch.Generator().manual_seed(seed)
        self.loader = None if batch_size is None else DataLoader(
            _RowIndices(size), batch_size=batch_size, shuffle=True, drop_last=drop_last,
            generator=self.generator)
        self.epoch_start = self.generator.get_state()
        self.consumed = 0  # batches taken in the current epoch
        self.epoch: Iterator[torch.Tensor] | None = None

    def __next__(self) -> Batch:
        if self.loader is None:
            return None
        while True:
            if self.epoch is None:
                self.epoch_start, self.consumed = self.generator.get_state(), 0
                self.epoch = iter(self.loader)
            rows = next(self.epoch, None)
            if rows is not None:
                self.consumed += 1
                batch: torch.Tensor = rows.to(self.device)
                return batch
            self.epoch = None

    def state_dict(self) -> dict[str, Any]:
        return {"epoch_start": self.epoch_start.clone(), "consumed": self.consumed,
                "in_epoch": self.epoch is not None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Go on from ``state``: replay the epoch's draws, skip the batches it took."""
        if self.loader is None:
            return
        self.generator.set_state(state["epoch_start"])
        self.epoch_start, self.consumed, self.epoch = self.generator.get_state(), 0, None
        if state["in_epoch"]:
            self.epoch = iter(self.loader)
            consumed = int(state["consumed"])
            # drawn and dropped as the dead run drew them: the loader's state moves on alike
            for _ in itertools.islice(self.epoch, consumed):
                pass
            self.consumed = consumed


def batches(size: int, batch_size: int | None, *, seed: int, drop_last: bool = False,
            device: torch.device | str = "cpu") -> BatchStream:
    """Yield the rows of each step forever; ``None`` means the whole data set (full batch)."""
    return BatchStream(size, batch_size, seed=seed, drop_last=drop_last, device=device)
