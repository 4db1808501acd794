"""Which rows each step trains on.

Mini-batches come in exactly the order of ``DataLoader(dataset, batch_size,
shuffle=True, generator=torch.Generator().manual_seed(seed))`` iterated epoch
after epoch, so a job matches the plain training loop most people write.
Torch's own loader produces the indices, which keeps that true across torch
versions (it draws more from the generator than one ``randperm`` per epoch).
"""

from __future__ import annotations

from collections.abc import Iterator

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


def batches(size: int, batch_size: int | None, *, seed: int, drop_last: bool = False,
            device: torch.device | str = "cpu") -> Iterator[Batch]:
    """Yield the rows of each step forever; ``None`` means the whole data set (full batch)."""
    if batch_size is None:
        while True:
            yield None
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(_RowIndices(size), batch_size=batch_size, shuffle=True,
                        drop_last=drop_last, generator=generator)
    while True:
        for rows in loader:
            yield rows.to(device)
