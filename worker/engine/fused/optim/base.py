"""What every fused optimizer shares: stacked state, per-job hyperparameters, job groups.

A fused optimizer updates parameters stacked along a leading job dimension ``J``
(``[J, *shape]``) the way ``J`` separate ``torch.optim`` instances would update their own
``[*shape]`` tensors with the single-tensor implementation (``foreach=False``, the default
on CPU): the same kernels, called in the same order, with the same scalar arguments.

* Parameters, gradients and state are handled as ``[J, n]`` views; an elementwise kernel
  gives each element the same result whatever the shape around it, so job ``j``'s row
  evolves as job ``j``'s own tensor would, and never reads another row.
* A hyperparameter torch passes as a Python float (``alpha=-lr``, ``value=1 - beta2``,
  ``mul_(momentum)``, ...) stays that very Python float when all jobs share it; when jobs
  differ it becomes a ``[J, 1]`` column of the parameter dtype holding what the kernel
  would have cast the float to, and the call is rewritten so that the kernel still rounds
  the same way: ``a.add_(b, alpha=s)`` (a fused multiply-add) becomes
  ``a.addcmul_(b, s)``; ``a.addcmul_(b, b, value=s)`` becomes ``a.addcmul_(b * s, b)``;
  ``a.addcdiv_(b, c, value=s)`` becomes ``a.addcdiv_(b * s, c)``. ``tests/worker/engine/
  fused/test_optimizers.py`` checks each rewrite, bit for bit, against torch.optim itself.
* Derived scalars (Adam's ``lr / (1 - beta1 ** step)``, ...) are computed per job with
  Python floats, in the order torch.optim computes them.
* Where torch.optim branches on a hyperparameter (``if momentum != 0``, ``if amsgrad``,
  ...), each job gets an integer *key* of such flags; jobs with the same key are updated
  together: on a view of their rows when those rows are consecutive (the fused loop orders
  its jobs by key, see ``group_order``), else on gathered rows (``index_select`` /
  ``index_copy_`` move values without changing them).
"""

from __future__ import annotations

import operator
from array import array
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

# A hyperparameter as the kernels see it: one Python float shared by every job in the
# call, or a [J, 1] column of per-job values (already in the parameters' dtype).
Scalar = float | Tensor
State = dict[str, Tensor]
# The jobs of one key: all of them (None), consecutive rows (a slice), or gathered rows.
Rows = slice | Tensor | None

_GROUP_CACHE_SIZE = 64
_VIEW_CACHE_SIZE = 1024
# Bits of a job's update key that every family reads the same way (prepared_grad); a
# family's own flags start at FAMILY_FLAG.
MAXIMIZE, DECAY, DECOUPLED, FAMILY_FLAG = 1, 2, 4, 8


class NotFusable(Exception):
    """A job's optimizer (or one of its options) has no fused implementation."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def common_flags(group: dict[str, Any]) -> int:
    """The key bits of torch.optim's common options: maximize, weight decay, decoupled."""
    return ((MAXIMIZE if group["maximize"] else 0)
            | (DECAY if group["weight_decay"] != 0 else 0)
            | (DECOUPLED if group.get("decoupled_weight_decay") else 0))


def prepared_grad(key: int, param: Tensor, grad: Tensor, s: dict[str, Scalar]) -> Tensor:
    """The prologue of every single-tensor update: the gradient negated for ``maximize``,
    then weight decay added to it, or, decoupled (AdamW), the parameter shrunk first."""
    if key & MAXIMIZE:
        grad = -grad
    if key & DECAY:
        if key & DECOUPLED:
            param.mul_(s["decay_factor"])
        else:
            grad = added(grad, param, s["weight_decay"])
    return grad


def add_scaled(x: Tensor, y: Tensor, s: Scalar) -> Tensor:
    """``x.add_(y, alpha=s)``."""
    if isinstance(s, Tensor):
        return x.addcmul_(y, s)
    return x.add_(y, alpha=s)


def added(x: Tensor, y: Tensor, s: Scalar) -> Tensor:
    """``x.add(y, alpha=s)`` (out of place)."""
    if isinstance(s, Tensor):
        return torch.addcmul(x, y, s)
    return x.add(y, alpha=s)


def add_squared(x: Tensor, y: Tensor, s: Scalar) -> Tensor:
    """``x.addcmul_(y, y, value=s)``: the kernel computes ``x + (s * y) * y``, fused."""
    if isinstance(s, Tensor):
        return x.addcmul_(y * s, y)
    return x.addcmul_(y, y, value=s)


def add_quotient(x: Tensor, a: Tensor, b: Tensor, s: Scalar) -> Tensor:
    """``x.addcdiv_(a, b, value=s)``: the kernel computes ``x + (s * a) / b``."""
    if isinstance(s, Tensor):
        return x.addcdiv_(a * s, b)
    return x.addcdiv_(a, b, value=s)


def _uniform(values: Sequence[Any]) -> bool:
    return len(values) == 0 or values.count(values[0]) == len(values)


class FusedOptimizer:
    """One optimizer family's single-tensor update, over ``J`` stacked jobs.

    ``step`` updates the stacked parameters in place; ``keep`` drops jobs. Subclasses
    give the state they keep (``new_state``), the per-job branch flags (``keys``), the
    per-step scalars (``scalars``) and the update of one group of jobs (``update``).
    """

    # "momentum" or "beta1": the value a cycling schedule (CyclicLR, OneCycleLR) may
    # override each step; None where the family has neither.
    cycles: ClassVar[str | None] = None
    # Whether ``scalars`` depends only on (step count, this step's arguments), so that
    # parameters with the same step count may share one result within a step.
    shared_scalars: ClassVar[bool] = True

    def __init__(self, name: str, groups: list[dict[str, Any]], params: list[Tensor]) -> None:
        self.name = name
        self.jobs = len(groups)
        self.params = list(params)
        self.dtype = params[0].dtype
        # torch.optim keeps step counts (and NAdam's mu_product, ASGD's eta and mu) in
        # float32 tensors, float64 ones when float64 is the default dtype.
        self.scalar_dtype = (torch.float64 if torch.get_default_dtype() == torch.float64
                             else torch.float32)
        self.steps = [0] * len(self.params)
        # Per-job values (each a list of length J), compacted by ``keep``.
        self.values: dict[str, list[Any]] = {}
        # Per-parameter, per-job values (e.g. whether SGD's momentum buffer exists yet).
        self.param_values: list[dict[str, list[Any]]] = [{} for _ in self.params]
        self.state: list[State] = []
        self._columns: dict[str, tuple[object, tuple[Sequence[float], ...], Scalar]] = {}
        self._groups: dict[tuple[int, ...], list[tuple[int, Rows]]] = {}
        self._views: dict[tuple[int, int, int], tuple[Tensor, Tensor]] = {}
        self._last_keys: list[int] | None = None
        self._last_groups: list[tuple[int, Rows]] = []
        self.lr: list[float] = []
        self.cycled: list[float] = []  # this step's momentum or beta1, per job
        self.setup(groups)
        self.state = [self.new_state(p.detach().view(self.jobs, p.numel() // self.jobs))
                      for p in self.params]

    # ------------------------------------------------------------------ subclass hooks

    def setup(self, groups: list[dict[str, Any]]) -> None:
        """Read the jobs' options into ``self.values`` (and check what is covered)."""
        raise NotImplementedError

    def new_state(self, param: Tensor) -> State:
        """The state of one parameter (``[J, n]``), as torch.optim initialises it."""
        raise NotImplementedError

    def keys(self, index: int) -> list[int]:
        """Per-job flags of the branches torch.optim takes for parameter ``index``."""
        keys: list[int] = self.values["key"]
        return keys

    def scalars(self, index: int, step: int) -> dict[str, Scalar]:
        """This step's hyperparameters for parameter ``index`` (its ``step``-th update)."""
        raise NotImplementedError

    def update(self, key: int, param: Tensor, grad: Tensor, state: State,
               s: dict[str, Scalar]) -> None:
        """torch.optim's update of one parameter, for jobs that share ``key``."""
        raise NotImplementedError

    def updated(self, index: int, step: int) -> None:
        """Called after parameter ``index``'s update (state kept in Python lists)."""

    # ------------------------------------------------------------------ public API

    def step(self, grads: Sequence[Tensor | None], lr: list[float], *,
             momentum: list[float] | None = None, beta1: list[float] | None = None) -> None:
        """One optimizer step of every job; ``grads[i]`` is ``params[i]``'s stacked gradient.

        ``lr`` is this step's learning rate of each job; ``momentum`` / ``beta1`` override
        the jobs' momentum / ``betas[0]`` this step (None: the options' values). A None
        gradient leaves that parameter (and its state) alone, as torch.optim does.
        """
        if len(grads) != len(self.params):
            raise ValueError(f"expected {len(self.params)} gradients, got {len(grads)}")
        if len(lr) != self.jobs:
            raise ValueError(f"expected {self.jobs} learning rates, got {len(lr)}")
        # Kept as our own lists, replaced only when the values change: ``scalar`` caches by
        # the identity of its inputs.
        if lr != self.lr:
            self.lr = list(map(float, lr))
        cycled = self._cycled(momentum, beta1)
        if cycled != self.cycled:
            self.cycled = cycled
        if self.jobs == 0:
            return
        shared: dict[int, dict[str, Scalar]] = {}
        with torch.no_grad():
            for index, grad in enumerate(grads):
                if grad is None:
                    continue
                self.steps[index] += 1
                step = self.steps[index]
                if not self.shared_scalars:
                    s = self.scalars(index, step)
                elif (cached := shared.get(step)) is not None:
                    s = cached
                else:
                    s = shared[step] = self.scalars(index, step)
                self._update_param(index, grad, s)
                self.updated(index, step)

    def keep(self, rows: Tensor, params: list[Tensor]) -> None:
        """Keep only jobs ``rows`` (a 1-D long tensor, in the new order); ``params`` are
        the caller's compacted parameters (``old[rows]``), which replace the old ones."""
        if len(params) != len(self.params):
            raise ValueError(f"expected {len(self.params)} parameters, got {len(params)}")
        if rows.dim() != 1 or rows.dtype not in (torch.int64, torch.int32):
            raise ValueError("rows must be a 1-D tensor of job indices")
        index = [int(i) for i in rows.tolist()]
        for p in params:
            if p.shape[0] != len(index):
                raise ValueError(f"a kept parameter has {p.shape[0]} rows, expected "
                                 f"{len(index)}")
        self.params = list(params)
        self.jobs = len(index)
        self.state = [{name: t.index_select(0, rows) for name, t in state.items()}
                      for state in self.state]
        self.values = {name: [v[i] for i in index] for name, v in self.values.items()}
        self.param_values = [{name: [v[i] for i in index] for name, v in values.items()}
                             for values in self.param_values]
        self._columns.clear()
        self._groups.clear()
        self._views.clear()
        self._last_keys = None

    def state_dict(self) -> dict[str, Any]:
        """What the jobs' torch.optim instances would hand over, for every job at once, as
        plain data: the step counts, the stacked state tensors (copies), and the per-job
        values that torch.optim keeps in scalar tensors or as a buffer's existence (the
        options themselves are the specs', read again on loading)."""
        return {"steps": list(self.steps), "lr": list(self.lr), "cycled": list(self.cycled),
                "state": [{name: t.detach().clone() for name, t in state.items()}
                          for state in self.state],
                "param_values": [{name: list(v) for name, v in values.items()}
                                 for values in self.param_values]}

    def load_state_dict(self, state: dict[str, Any], jobs: list[int]) -> None:
        """Go on from ``state``: this optimizer's job k is the state's job ``jobs[k]`` (so
        a resumed run may hold some of the jobs only, in any order)."""
        if len(jobs) != self.jobs:
            raise ValueError(f"expected {self.jobs} jobs to load, got {len(jobs)}")
        if len(state["state"]) != len(self.params):
            raise ValueError(f"a state of {len(state['state'])} parameters for "
                             f"{len(self.params)}")
        rows = torch.tensor(jobs, dtype=torch.long)
        self.steps = [int(step) for step in state["steps"]]
        self.lr = [float(state["lr"][j]) for j in jobs] if state["lr"] else []
        self.cycled = [float(state["cycled"][j]) for j in jobs] if state["cycled"] else []
        for mine, theirs in zip(self.state, state["state"], strict=True):
            for name, tensor in mine.items():
                tensor.copy_(theirs[name].index_select(0, rows))
        self.param_values = [{name: [v[j] for j in jobs] for name, v in values.items()}
                             for values in state["param_values"]]
        self.loaded()

    def loaded(self) -> None:
        """Forget what is cached from the values before a load (subclasses cache more)."""
        self._columns.clear()
        self._groups.clear()
        self._views.clear()
        self._last_keys = None

    # ------------------------------------------------------------------ helpers

    def scalar(self, name: str, fn: Callable[..., float], *inputs: Sequence[float],
               token: object = None) -> Scalar:
        """``fn`` of each job's ``inputs`` (lists of per-job values), as a Scalar.

        One Python float when every input is the same for all jobs, else a [J, 1] column.
        Cached under ``name`` while the inputs are the same list objects (lists here are
        replaced, never changed in place) and ``token`` is equal.
        """
        cached = self._columns.get(name)
        if (cached is not None and cached[0] == token and len(cached[1]) == len(inputs)
                and all(map(operator.is_, cached[1], inputs))):
            return cached[2]
        value: Scalar
        if all(_uniform(v) for v in inputs):
            value = fn(*(v[0] for v in inputs))
        else:
            value = self.column(list(map(fn, *inputs)))
        self._columns[name] = (token, inputs, value)
        return value

    def column(self, values: list[float]) -> Tensor:
        """A [J, 1] column of the parameters' dtype: what kernels cast these floats to."""
        # array's C cast rounds like torch's (to nearest even; overflow to inf), faster
        # than torch.tensor(values, dtype=...).
        buffer = array("f" if self.dtype == torch.float32 else "d", values)
        return torch.frombuffer(buffer, dtype=self.dtype).view(-1, 1)

    def per_job(self, fn: Callable[..., float], *inputs: Sequence[float]) -> list[float]:
        """``fn`` of each job's ``inputs``, computed once when every input is uniform."""
        if all(_uniform(v) for v in inputs):
            return [fn(*(v[0] for v in inputs))] * self.jobs
        return list(map(fn, *inputs))

    def round_scalars(self, values: list[float]) -> list[float]:
        """``values`` stored in torch.optim scalar state tensors and read back with item()."""
        if self.scalar_dtype == torch.float32:
            return array("f", values).tolist()  # round to nearest even, like a cast
        return values

    def _cycled(self, momentum: list[float] | None, beta1: list[float] | None) -> list[float]:
        given = {"momentum": momentum, "beta1": beta1}
        for name, values in given.items():
            if values is None:
                continue
            if name != self.cycles:
                raise ValueError(f"{self.name} has no {name} to cycle")
            if len(values) != self.jobs:
                raise ValueError(f"expected {self.jobs} {name} values, got {len(values)}")
        if self.cycles is None:
            return []
        values = given[self.cycles]
        return self.values[self.cycles] if values is None else [float(v) for v in values]

    def group_order(self) -> list[int]:
        """The jobs ordered so that each first-step key's jobs are consecutive (stable):
        then each group's update runs on a view, with nothing gathered or scattered."""
        if not self.params:
            return list(range(self.jobs))
        if not self.cycled:  # before the first step: the options' momentum or beta1
            self.cycled = self._cycled(None, None)
        keys = self.keys(0)
        return sorted(range(self.jobs), key=keys.__getitem__)

    def _job_groups(self, keys: list[int]) -> list[tuple[int, Rows]]:
        if keys is self._last_keys:  # ``keys`` caches its lists: the same list, same groups
            return self._last_groups
        groups = self._grouped(keys)
        self._last_keys, self._last_groups = keys, groups
        return groups

    def _grouped(self, keys: list[int]) -> list[tuple[int, Rows]]:
        if _uniform(keys):
            return [(keys[0], None)]
        signature = tuple(keys)
        groups = self._groups.get(signature)
        if groups is None:
            rows: dict[int, list[int]] = {}
            for j, key in enumerate(keys):
                rows.setdefault(key, []).append(j)
            groups = [(key, _rows(r)) for key, r in rows.items()]
            if len(self._groups) >= _GROUP_CACHE_SIZE:
                self._groups.clear()
            self._groups[signature] = groups
        return groups

    def _update_param(self, index: int, grad: Tensor, s: dict[str, Scalar]) -> None:
        jobs = self.jobs
        width = self.params[index].numel() // jobs
        param = self.params[index].detach().view(jobs, width)
        flat_grad = grad.detach().reshape(jobs, width)
        state = self.state[index]
        for key, rows in self._job_groups(self.keys(index)):
            if rows is None:
                self.update(key, param, flat_grad, state, s)
            elif isinstance(rows, slice):
                self._update_view(key, rows, param, flat_grad, state, s)
            else:
                self._update_gathered(key, rows, param, flat_grad, state, s)

    def _update_view(self, key: int, rows: slice, param: Tensor, grad: Tensor, state: State,
                     s: dict[str, Scalar]) -> None:
        """Update consecutive rows in place, through views (a view of consecutive rows of
        a [J, n] tensor is contiguous, as a gathered copy is: the same kernel paths)."""
        part_state = {name: self._view(t, rows) for name, t in state.items()}
        views = dict(part_state)
        part_s = {name: v if isinstance(v, float) else self._view(v, rows)
                  for name, v in s.items()}
        self.update(key, self._view(param, rows), grad[rows], part_state, part_s)
        for name, view in views.items():
            if part_state[name] is not view:  # replaced rather than updated in place
                view.copy_(part_state[name])

    def _view(self, tensor: Tensor, rows: slice) -> Tensor:
        """``tensor[rows]``, the same view object while ``tensor`` is the same one (the
        parameters, state and scalar columns live across steps)."""
        cache_key = (id(tensor), rows.start, rows.stop)
        cached = self._views.get(cache_key)
        if cached is not None and cached[0] is tensor:
            return cached[1]
        if len(self._views) >= _VIEW_CACHE_SIZE:
            self._views.clear()
        view = tensor[rows]
        self._views[cache_key] = (tensor, view)
        return view

    def _update_gathered(self, key: int, rows: Tensor, param: Tensor, grad: Tensor,
                         state: State, s: dict[str, Scalar]) -> None:
        part = param.index_select(0, rows)
        part_state = {name: t.index_select(0, rows) for name, t in state.items()}
        part_s = {name: v if isinstance(v, float) else v.index_select(0, rows)
                  for name, v in s.items()}
        self.update(key, part, grad.index_select(0, rows), part_state, part_s)
        param.index_copy_(0, rows, part)
        for name, t in state.items():
            t.index_copy_(0, rows, part_state[name])


def _rows(rows: list[int]) -> slice | Tensor:
    if rows[-1] - rows[0] == len(rows) - 1:  # ascending, so consecutive
        return slice(rows[0], rows[-1] + 1)
    return torch.tensor(rows, dtype=torch.long)
