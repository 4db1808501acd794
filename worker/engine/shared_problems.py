"""What validating many specs can share: a problem built once, started afresh for each spec.

A sweep's points usually differ only in what the optimizer and schedule are given (and the
seed): the data set, the split, the model and the checks of its output are the same for
all of them. :func:`problem_key` names that shared part; a :class:`PreparedProblem` keeps it
with the model's initial values and the random state that follows it, and hands each spec
the problem as fresh as if it had been built for that spec alone; a :class:`ProblemCache`
keeps recent ones within a memory budget.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import torch

from optimlab.worker.engine.data import Dataset, DatasetSource
from optimlab.worker.engine.problem import Part, Problem
from optimlab.worker.spec import JobSpec

# Fields that building the problem and checking the model's output on each batch size never
# read: they are checked for every spec. Every other field (model, data, loss, batch_size,
# seed, and any field added later) is part of the key, so that specs differing in one never
# share a check they could fail differently. The seed is in the key: it draws synthetic data,
# the validation split and the initial weights, and a point's one real step runs from those.
PER_SPEC_FIELDS = frozenset({
    "name", "tags", "optimizer", "parameter_groups", "schedule", "drop_last", "steps",
    "epochs", "eval_every", "clip_grad_norm", "stop", "diverge_factor", "summary", "device"})
# Problems kept for reuse by one validator, counted by their tensors' bytes.
MAX_SHARED_BYTES = 256 * 2**20


def problem_key(spec: JobSpec) -> bytes:
    """Equal for specs whose problem (data, split, model, output checks) is the same."""
    shared = spec.model_dump(mode="json", exclude=set(PER_SPEC_FIELDS))
    return orjson.dumps(shared, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True, eq=False)
class _Saved:
    """A parameter or buffer, and copies of its value and gradient."""

    tensor: torch.Tensor
    value: torch.Tensor
    grad: torch.Tensor | None

    @classmethod
    def of(cls, tensor: torch.Tensor) -> _Saved:
        grad = tensor.grad
        return cls(tensor, tensor.detach().clone(), None if grad is None else grad.clone())

    def restore(self) -> None:
        self.tensor.copy_(self.value)
        self.tensor.grad = None if self.grad is None else self.grad.clone()

    @property
    def copies(self) -> list[torch.Tensor]:
        return [self.value] if self.grad is None else [self.value, self.grad]


@dataclass(frozen=True, eq=False)
class PreparedProblem:
    """A problem whose output checks passed, its model's state and the random state right
    after the checks: what each spec of its key starts its own step from."""

    problem: Problem
    initial: list[_Saved]
    rng_state: torch.Tensor

    @classmethod
    def capture(cls, problem: Problem) -> PreparedProblem:
        model = problem.model
        return cls(problem, [_Saved.of(t) for t in (*model.parameters(), *model.buffers())],
                   torch.get_rng_state())

    def fresh(self) -> Problem:
        """The problem as building and checking it again would leave it: the model's
        parameters, buffers and gradients back to their values after the checks, training
        mode, the random state rewound; the data set is not read and split again. The
        previous spec's optimizer and schedule are gone with its ``Training``; its step
        changed nothing else of the model (restoring values costs far less than copying the
        module)."""
        with torch.no_grad():
            for saved in self.initial:
                saved.restore()
        self.problem.model.train()
        torch.set_rng_state(self.rng_state)
        return self.problem

    @property
    def nbytes(self) -> int:
        copies = [t for saved in self.initial for t in saved.copies]
        return sum(t.numel() * t.element_size() for t in [*_tensors(self.problem), *copies])


def _tensors(problem: Problem) -> Iterator[torch.Tensor]:
    yield from problem.model.parameters()
    yield from problem.model.buffers()
    for part in (problem.train, problem.val):
        if part is not None:
            yield from _part_tensors(part)


def _part_tensors(part: Part) -> Iterator[torch.Tensor]:
    yield from part.inputs.values() if isinstance(part.inputs, dict) else [part.inputs]
    if part.targets is not None:
        yield part.targets


class ProblemCache:
    """Prepared problems by key, the least recently used dropped beyond ``max_bytes`` (a
    sweep over many seeds of a large data set must not hold every seed's copy)."""

    def __init__(self, max_bytes: int = MAX_SHARED_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[bytes, tuple[PreparedProblem, int]] = OrderedDict()
        self._bytes = 0

    def get(self, key: bytes) -> PreparedProblem | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: bytes, prepared: PreparedProblem) -> None:
        size = prepared.nbytes
        if size > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        self._bytes += size - (old[1] if old is not None else 0)
        self._entries[key] = (prepared, size)
        while self._bytes > self.max_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self._bytes -= dropped

    def __len__(self) -> int:
        return len(self._entries)


class RecentDatasetSource:
    """A :class:`DatasetSource` that keeps the last data set it read: the points of a sweep
    over seeds of one upload would otherwise read and parse it once per seed. A data set is
    never changed once loaded (splits and standardisation make new tensors)."""

    def __init__(self, source: DatasetSource) -> None:
        self.source = source
        self._last: tuple[str, Dataset] | None = None

    def load(self, dataset_id: str) -> Dataset:
        if self._last is None or self._last[0] != dataset_id:
            self._last = (dataset_id, self.source.load(dataset_id))
        return self._last[1]
