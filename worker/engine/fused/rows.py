"""Each job's mini-batch rows, as a ``[jobs, batch]`` index tensor per step.

A job alone draws its batches from ``DataLoader(shuffle=True, generator=seeded)``
(worker/engine/batches.py). Per epoch that loader draws one int64 from the generator (its
base seed), then ``randperm(n)``, and one more ``randperm(n)`` for the sampler's empty
remainder when the epoch runs out; the same draws, made directly, give the same rows at a
fraction of the cost. ``job_rows`` checks that this still holds for the installed torch
against the loader itself, and uses the loader when it does not.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from optimlab.worker.engine.batches import batches

CHECKED_EPOCHS = 2


def job_rows(size: int, batch_size: int | None, seeds: list[int], *, drop_last: bool,
             device: torch.device | str = "cpu") -> Iterator[torch.Tensor | None]:
    """Yield each step's rows for every job, forever; None means the whole split."""
    if batch_size is None:
        while True:
            yield None
    if _draws_match_loader(size, batch_size, seeds[0], drop_last=drop_last):
        yield from _drawn(size, batch_size, seeds, drop_last=drop_last, device=device)
    else:
        yield from _from_loaders(size, batch_size, seeds, drop_last=drop_last, device=device)


def _epoch_orders(generators: list[torch.Generator], size: int) -> torch.Tensor:
    orders = []
    for generator in generators:
        torch.empty((), dtype=torch.int64).random_(generator=generator)  # the base seed
        orders.append(torch.randperm(size, generator=generator))
        torch.randperm(size, generator=generator)  # RandomSampler's remainder, [:0] of it
    return torch.stack(orders)


def _drawn(size: int, batch_size: int, seeds: list[int], *, drop_last: bool,
           device: torch.device | str) -> Iterator[torch.Tensor]:
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    while True:
        orders = _epoch_orders(generators, size).to(device)
        for start in range(0, size, batch_size):
            if drop_last and start + batch_size > size:
                break
            yield orders[:, start:start + batch_size]


def _from_loaders(size: int, batch_size: int, seeds: list[int], *, drop_last: bool,
                  device: torch.device | str) -> Iterator[torch.Tensor]:
    loaders = [batches(size, batch_size, seed=seed, drop_last=drop_last) for seed in seeds]
    while True:
        rows = [next(loader) for loader in loaders]
        yield torch.stack([r for r in rows if r is not None]).to(device)


def _draws_match_loader(size: int, batch_size: int, seed: int, *, drop_last: bool) -> bool:
    per_epoch = size // batch_size if drop_last else -(-size // batch_size)
    count = CHECKED_EPOCHS * per_epoch
    drawn = _drawn(size, batch_size, [seed], drop_last=drop_last, device="cpu")
    loader = batches(size, batch_size, seed=seed, drop_last=drop_last)
    for _ in range(count):
        ours, theirs = next(drawn)[0], next(loader)
        if theirs is None or not torch.equal(ours, theirs):
            return False
    return True
