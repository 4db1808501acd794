"""Each job's mini-batch rows, as a ``[jobs, batch]`` index tensor per step.

A job alone draws its batches from ``DataLoader(shuffle=True, generator=seeded)``
(worker/engine/batches.py). Per epoch that loader draws one int64 from the generator (its
base seed), then ``randperm(n)``, and one more ``randperm(n)`` for the sampler's empty
remainder when the epoch runs out; the same draws, made directly, give the same rows at a
fraction of the cost. ``job_rows`` checks that this still holds for the installed torch
against the loader itself, and uses the loader when it does not.

``JobRows`` hands over where it is (``state_dict``), per job, so that a resumed run (of
all the jobs or of some) draws on exactly where the checkpointed one was.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from optimlab.worker.engine.batches import batches

CHECKED_EPOCHS = 2


class JobRows:
    """Each step's rows of every job, forever (``next``); None means the whole split."""

    def __init__(self, size: int, batch_size: int | None, seeds: list[int], *,
                 drop_last: bool, device: torch.device | str = "cpu") -> None:
        self.size, self.batch_size, self.seeds = size, batch_size, list(seeds)
        self.drop_last, self.device = drop_last, device
        self.drawn = 0  # the steps drawn so far
        self.direct = batch_size is not None and _draws_match_loader(
            size, batch_size, seeds[0], drop_last=drop_last)
        self.generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        self.orders: torch.Tensor | None = None  # this epoch's order of every job's rows
        self.start = 0  # the first row of the next batch in ``orders``
        self._loaders: list[Iterator[torch.Tensor | None]] | None = None

    def __iter__(self) -> JobRows:
        return self

    def __next__(self) -> torch.Tensor | None:
        self.drawn += 1
        if self.batch_size is None:
            return None
        if not self.direct:
            return self._from_loaders()
        size, batch = self.size, self.batch_size
        if self.orders is None or self.start >= size or (
                self.drop_last and self.start + batch > size):
            self.orders, self.start = _epoch_orders(self.generators, size).to(self.device), 0
        rows = self.orders[:, self.start:self.start + batch]
        self.start += batch
        return rows

    def _from_loaders(self) -> torch.Tensor:
        if self._loaders is None:
            assert self.batch_size is not None
            self._loaders = [batches(self.size, self.batch_size, seed=seed,
                                     drop_last=self.drop_last) for seed in self.seeds]
        rows = [next(loader) for loader in self._loaders]
        return torch.stack([r for r in rows if r is not None]).to(self.device)

    def state_dict(self, jobs: list[int]) -> dict[str, Any]:
        """Where jobs ``jobs`` (positions in this object's seeds) are, as plain data: the
        generators' states and this epoch's orders, or (the loaders' way, whose state
        torch does not hand over) the steps drawn, to draw again on resuming."""
        return {"drawn": self.drawn, "direct": self.direct, "start": self.start,
                "generators": [self.generators[j].get_state() for j in jobs],
                "orders": None if self.orders is None else self.orders[jobs].cpu().clone()}

    def load_state_dict(self, state: dict[str, Any], jobs: dict[int, int]) -> None:
        """Go on from ``state``: this object's job k is the state's job ``jobs[k]`` (the
        jobs left out are not drawn for again)."""
        if bool(state["direct"]) != self.direct:
            raise ValueError("the checkpoint drew its rows another way than this torch does")
        if not self.direct or self.batch_size is None:
            for _ in range(int(state["drawn"])):  # replay: the loaders' draws are cheap
                next(self)
            return
        self.drawn, self.start = int(state["drawn"]), int(state["start"])
        for k, theirs in jobs.items():
            self.generators[k].set_state(state["generators"][theirs])
        saved = state["orders"]
        if saved is not None:
            orders = torch.zeros((len(self.seeds), saved.shape[1]), dtype=saved.dtype)
            for k, theirs in jobs.items():
                orders[k] = saved[theirs]
            self.orders = orders.to(self.device)


def job_rows(size: int, batch_size: int | None, seeds: list[int], *, drop_last: bool,
             device: torch.device | str = "cpu") -> JobRows:
    """Each step's rows for every job, forever; None means the whole split."""
    return JobRows(size, batch_size, seeds, drop_last=drop_last, device=device)


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
