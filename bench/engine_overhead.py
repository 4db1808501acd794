"""Per-step cost of the training engine next to the plain PyTorch loop it reproduces.

For two problems (the seed problem ``x**2 -> 16`` with SGD, full batch; and a
linear regression ``w*u + b`` on 1000 rows, mini-batches of 32, Adam), these
variants run in the same process, interleaved, under the same conditions:

* ``bare``: a hand-written loop (``zero_grad``, loss, ``loss.item()``,
  ``backward``, ``step``, the parameters read back every step), mini-batches
  from ``DataLoader(TensorDataset, shuffle=True, generator)``: the same rows in
  the same order as the engine's batching;
* ``bare+index`` (linreg only): the same loop with the engine's way of batching
  (the loader yields row indices, each column is indexed once per step), which
  isolates the engine's own overhead on the mini-batch problem;
* ``engine+null``: ``run_training`` with a sink that drops the points, so only
  the engine's own bookkeeping counts;
* ``engine+list``: ``run_training`` with the in-memory ``ListSink``.

Each figure is the wall time of a whole run (set-up included) divided by its
steps; the median of ``--repeats`` runs is shown with the min-max spread, and
the ratio is against the bare loop measured in the same run (each repeat runs
every variant once, starting from a different one). The "min ratio" compares
the fastest runs, which other load on a shared machine disturbs least. Torch is
pinned to one thread so the bare loop and the engine run alike. Before timing, the
engine's histories are checked to be the bare loops', value for value.

    .venv/bin/python bench/engine_overhead.py [--steps N] [--repeats R]
    .venv/bin/python bench/engine_overhead.py --profile seed   # cProfile of the engine
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import gc
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from support import load_line, positive
from torch.utils.data import DataLoader, Dataset, TensorDataset

from optimlab.worker.engine import ListSink, run_training
from optimlab.worker.engine.sink import JobUpdate
from optimlab.worker.spec import JobSpec

LINREG_ROWS = 1000
LINREG_BATCH = 32
SEED = 0
T = TypeVar("T")


class NullSink:
    """Accepts every flush and keeps nothing: the engine's overhead alone."""

    def write(self, updates: Sequence[JobUpdate]) -> list[bool]:
        return [True] * len(updates)


# --------------------------------------------------------------------------- problems

def _linreg_data() -> tuple[list[float], list[float]]:
    rng = np.random.default_rng(20261125)
    u = rng.uniform(-2.0, 2.0, size=LINREG_ROWS)
    t = 3.0 * u - 0.5 + rng.normal(0.0, 0.1, size=LINREG_ROWS)
    return u.tolist(), t.tolist()


LINREG_U, LINREG_T = _linreg_data()


def seed_spec(steps: int) -> JobSpec:
    return JobSpec.model_validate({
        "model": {"kind": "expression", "expression": "x**2", "parameters": {"x": [1.0]}},
        "data": {"kind": "inline", "targets": [16.0]},
        "loss": "mse",
        "optimizer": {"name": "SGD", "lr": 0.01},
        "steps": steps,
        "seed": SEED,
        "device": "cpu",
    })


def linreg_spec(steps: int) -> JobSpec:
    return JobSpec.model_validate({
        "model": {"kind": "expression", "expression": "w*u + b",
                  "parameters": {"w": 0.0, "b": 0.0}},
        "data": {"kind": "inline", "inputs": {"u": LINREG_U}, "targets": LINREG_T},
        "loss": "mse",
        "optimizer": {"name": "Adam", "lr": 0.01},
        "batch_size": LINREG_BATCH,
        "steps": steps,
        "seed": SEED,
        "device": "cpu",
    })


# A history: the loss of every step and the parameters after every update.
History = tuple[list[float], list[list[float]]]


def bare_seed(steps: int) -> History:
    """The forum post's loop, recording the loss and the parameter every step."""
    torch.manual_seed(SEED)
    x = torch.tensor([1.0], requires_grad=True)
    target = torch.tensor([16.0])
    opt = torch.optim.SGD([x], lr=0.01)
    losses: list[float] = []
    params: list[list[float]] = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.mse_loss(x**2, target)
        losses.append(loss.item())
        loss.backward()
        opt.step()
        params.append([x.item()])
    return losses, params


def _epochs(loader: Iterable[T]) -> Iterator[T]:
    """What the loader yields, epoch after epoch."""
    while True:
        yield from loader


def bare_linreg(steps: int) -> History:
    """Mini-batch linear regression as usually written, DataLoader epoch after epoch."""
    torch.manual_seed(SEED)
    u = torch.tensor(LINREG_U, dtype=torch.float32)
    t = torch.tensor(LINREG_T, dtype=torch.float32)
    w = torch.tensor(0.0, requires_grad=True)
    b = torch.tensor(0.0, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.01)
    loader = DataLoader(TensorDataset(u, t), batch_size=LINREG_BATCH, shuffle=True,
                        generator=torch.Generator().manual_seed(SEED))
    rows = _epochs(loader)
    losses: list[float] = []
    params: list[list[float]] = []
    for _ in range(steps):
        ub, tb = next(rows)
        opt.zero_grad()
        loss = F.mse_loss(w * ub + b, tb)
        losses.append(loss.item())
        loss.backward()
        opt.step()
        params.append([w.item(), b.item()])
    return losses, params


class _Indices(Dataset[int]):
    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        return index


def bare_linreg_indexed(steps: int) -> History:
    """The same loop, but the loader yields row indices and each column is indexed once.

    That is how the engine batches (same rows, same order, see ``engine/batches.py``);
    ``TensorDataset`` instead indexes every sample of every column and stacks them.
    Against this loop the engine's own overhead shows on the mini-batch problem.
    """
    torch.manual_seed(SEED)
    u = torch.tensor(LINREG_U, dtype=torch.float32)
    t = torch.tensor(LINREG_T, dtype=torch.float32)
    w = torch.tensor(0.0, requires_grad=True)
    b = torch.tensor(0.0, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.01)
    loader = DataLoader(_Indices(LINREG_ROWS), batch_size=LINREG_BATCH, shuffle=True,
                        generator=torch.Generator().manual_seed(SEED))
    rows = _epochs(loader)
    losses: list[float] = []
    params: list[list[float]] = []
    for _ in range(steps):
        index = next(rows)
        opt.zero_grad()
        loss = F.mse_loss(w * u[index] + b, t[index])
        losses.append(loss.item())
        loss.backward()
        opt.step()
        params.append([w.item(), b.item()])
    return losses, params


def engine_history(spec: JobSpec) -> History:
    sink = ListSink()
    run_training(spec, sink)
    by_step: dict[int, dict[str, float]] = {}
    for step, name, value in sink.points:
        by_step.setdefault(step, {})[name] = value
    steps = sorted(by_step)
    names = sorted(n for n in by_step[0] if n.startswith("param."))
    return ([by_step[s]["loss"] for s in steps],
            [[by_step[s][n] for n in names] for s in steps])


@dataclass(frozen=True)
class Case:
    name: str
    spec: Callable[[int], JobSpec]
    bare: Callable[[int], History]
    param_order: list[str]  # names of the bare loop's parameters, in its order
    other_bare: dict[str, Callable[[int], History]] = field(default_factory=dict)

    def loops(self) -> dict[str, Callable[[int], History]]:
        return {"bare": self.bare, **self.other_bare}

    def variants(self, steps: int) -> dict[str, Callable[[], object]]:
        spec = self.spec(steps)
        variants: dict[str, Callable[[], object]] = {
            name: functools.partial(loop, steps) for name, loop in self.loops().items()}
        variants["engine+null"] = lambda: run_training(spec, NullSink())
        variants["engine+list"] = lambda: run_training(spec, ListSink())
        return variants


CASES = {
    "seed": Case("seed", seed_spec, bare_seed, ["x"]),
    "linreg": Case("linreg", linreg_spec, bare_linreg, ["w", "b"],
                   {"bare+index": bare_linreg_indexed}),
}


def check_same_history(case: Case, steps: int) -> None:
    """The comparison is only fair if all loops do the same work: same values, step by step."""
    engine_losses, engine_params = engine_history(case.spec(steps))
    # The engine's parameter series are sorted by name; put the bare loops' in that order.
    order = sorted(range(len(case.param_order)), key=lambda i: case.param_order[i])
    for name, loop in case.loops().items():
        losses, params = loop(steps)
        params = [[p[i] for i in order] for p in params]
        if losses != engine_losses or params != engine_params:
            sys.exit(f"{case.name}: the engine's history differs from the {name} loop's; "
                     "the timings would not compare like with like")


# --------------------------------------------------------------------------- timing

def time_once(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def measure(case: Case, steps: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per step of each variant; variants interleaved within each repeat."""
    variants = case.variants(steps)
    warm = case.variants(min(steps, 200))
    for run in warm.values():  # lazy imports, allocator, first-call caches
        run()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    gc.collect()  # once: a full collection takes ~0.2 s with torch loaded
    for repeat in range(repeats):
        shift = repeat % len(names)  # no variant always runs first or after the same one
        for name in names[shift:] + names[:shift]:
            samples[name].append(time_once(variants[name]) / steps)
    return samples


def format_row(problem: str, variant: str, samples: list[float], bare: list[float]) -> str:
    median = statistics.median(samples)
    spread = f"{min(samples) * 1e6:.1f}-{max(samples) * 1e6:.1f}"
    return (f"{problem:<8} {variant:<12} {median * 1e6:>9.1f}  {spread:>15}  "
            f"{median / statistics.median(bare):>6.2f}x  {min(samples) / min(bare):>8.2f}x")


def profile(case: Case, steps: int, top: int) -> None:
    spec = case.spec(steps)
    run_training(spec, NullSink())  # warm
    profiler = cProfile.Profile()
    profiler.enable()
    run_training(spec, NullSink())
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stdout)
    print(f"cProfile of run_training({case.name}, {steps} steps, NullSink), by own time:")
    stats.sort_stats("tottime").print_stats(top)
    print("by cumulative time:")
    stats.sort_stats("cumulative").print_stats(top)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=positive, default=2000,
                        help="steps per run (default 2000)")
    parser.add_argument("--repeats", type=positive, default=5,
                        help="runs per variant (default 5)")
    parser.add_argument("--problem", choices=[*CASES, "all"], default="all")
    parser.add_argument("--profile", choices=list(CASES), default=None,
                        help="instead of timing, cProfile the engine on this problem")
    parser.add_argument("--top", type=int, default=25, help="rows of the profile to print")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    if args.profile is not None:
        profile(CASES[args.profile], args.steps, args.top)
        return

    print(f"engine overhead: torch {torch.__version__}, torch.get_num_threads() = "
          f"{torch.get_num_threads()} (pinned), Python {platform.python_version()}, "
          f"{platform.machine()}")
    print(f"{args.steps} steps per run, median of {args.repeats} runs (min-max); "
          "set-up included; ratio = median / bare median of this run, "
          "min ratio = fastest / fastest bare (less sensitive to other load)")
    print(load_line())
    cases = list(CASES.values()) if args.problem == "all" else [CASES[args.problem]]
    print(f"{'problem':<8} {'variant':<12} {'us/step':>9}  {'(min-max)':>15}  {'ratio':>7}  "
          f"{'min ratio':>9}")
    for case in cases:
        check_same_history(case, min(args.steps, 500))
        samples = measure(case, args.steps, args.repeats)
        for variant, values in samples.items():
            print(format_row(case.name, variant, values, samples["bare"]), flush=True)
    print(load_line())


if __name__ == "__main__":
    main()
