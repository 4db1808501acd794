"""Per-step cost of a fused optimizer next to the separate torch.optim instances it replaces.

J jobs (default 100) each own a 1-element parameter (``torch.zeros(1)``) and an optimizer
(default ``SGD(lr, momentum=0.9)``, a different lr per job, as in a learning-rate sweep).
These variants run in the same process, interleaved, under the same conditions:

* ``separate``: J ``torch.optim`` instances, ``step()`` called on each (gradients set once);
* ``fused``: one fused optimizer over the stacked [J, 1] parameter, the same lr list
  every step (the per-job hyperparameter columns are cached);
* ``fused+sched``: the same, with a new lr list every step, as an LR schedule gives it
  (the lr column is rebuilt every step).

Only the optimizer steps are timed (no set-up, forward or backward pass). Each figure is
the wall time of ``--steps`` steps divided by their number; the median of
``--repeats`` runs is shown with the min-max spread; the ratio is how many times faster
than ``separate`` (medians; "min ratio": fastest runs). Torch is pinned to one thread.
Before timing, the fused parameters are checked to equal the separate ones after the
same steps.

    .venv/bin/python bench/fused_optimizer.py [--jobs J] [--steps N] [--repeats R]
    .venv/bin/python bench/fused_optimizer.py --optimizer Adam
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from support import load_line, positive

from optimlab.worker.engine.fused.optimizers import FAMILIES, fused_optimizer


def job_options(name: str, jobs: int) -> list[dict[str, Any]]:
    """A learning-rate sweep: lr from 0.001 up, momentum 0.9 where the class has one."""
    extra: dict[str, Any] = {"momentum": 0.9} if name in ("SGD", "RMSprop") else {}
    return [{"lr": 0.001 * (1 + j), **extra} for j in range(jobs)]


def separate(name: str, jobs: int) -> tuple[list[torch.Tensor], list[torch.optim.Optimizer]]:
    cls = getattr(torch.optim, name)
    params = [torch.zeros(1, requires_grad=True) for _ in range(jobs)]
    for j, p in enumerate(params):
        p.grad = torch.full((1,), 0.5 + 0.01 * j)
    return params, [cls([p], **o) for p, o in zip(params, job_options(name, jobs), strict=True)]


def fused(name: str, jobs: int) -> tuple[torch.Tensor, Callable[[list[float]], None]]:
    param = torch.zeros(jobs, 1, requires_grad=True)
    grad = torch.tensor([[0.5 + 0.01 * j] for j in range(jobs)])
    optimizer = fused_optimizer(name, job_options(name, jobs), [param])
    return param, lambda lr: optimizer.step([grad], lr)


def variants(name: str, jobs: int, steps: int) -> dict[str, Callable[[], Callable[[], None]]]:
    """Each variant's set-up, which returns the timed part: ``steps`` optimizer steps."""
    lr = [float(o["lr"]) for o in job_options(name, jobs)]
    # One list per step, each a new object with new values (a schedule's decay).
    scheduled = [[v * (1 - k / (2 * steps)) for v in lr] for k in range(steps)]

    def run_separate() -> Callable[[], None]:
        _, optimizers = separate(name, jobs)

        def run() -> None:
            for _ in range(steps):
                for optimizer in optimizers:
                    optimizer.step()
        return run

    def run_fused() -> Callable[[], None]:
        _, step = fused(name, jobs)

        def run() -> None:
            for _ in range(steps):
                step(lr)
        return run

    def run_scheduled() -> Callable[[], None]:
        _, step = fused(name, jobs)

        def run() -> None:
            for values in scheduled:
                step(values)
        return run

    return {"separate": run_separate, "fused": run_fused, "fused+sched": run_scheduled}


def same_values(name: str, jobs: int, steps: int) -> bool:
    """The comparison is only fair if both do the same work: same parameters after it."""
    params, optimizers = separate(name, jobs)
    stacked, step = fused(name, jobs)
    lr = [float(o["lr"]) for o in job_options(name, jobs)]
    for _ in range(steps):
        for optimizer in optimizers:
            optimizer.step()
        step(lr)
    return torch.equal(torch.stack([p.detach() for p in params]), stacked.detach())


def time_once(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def measure(name: str, jobs: int, steps: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per step of each variant; variants interleaved within each repeat."""
    runs = variants(name, jobs, steps)
    for setup in variants(name, jobs, min(steps, 100)).values():  # warm caches, allocator
        setup()()
    samples: dict[str, list[float]] = {variant: [] for variant in runs}
    names = list(runs)
    gc.collect()
    for repeat in range(repeats):
        shift = repeat % len(names)
        for variant in names[shift:] + names[:shift]:
            samples[variant].append(time_once(runs[variant]()) / steps)
    return samples


def format_row(variant: str, samples: list[float], base: list[float]) -> str:
    median = statistics.median(samples)
    spread = f"{min(samples) * 1e6:.1f}-{max(samples) * 1e6:.1f}"
    return (f"{variant:<12} {median * 1e6:>10.1f}  {spread:>17}  "
            f"{statistics.median(base) / median:>7.1f}x  {min(base) / min(samples):>9.1f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=positive, default=100, help="jobs J (default 100)")
    parser.add_argument("--steps", type=positive, default=500,
                        help="steps per run (default 500)")
    parser.add_argument("--repeats", type=positive, default=5,
                        help="runs per variant (default 5)")
    parser.add_argument("--optimizer", choices=sorted(FAMILIES), default="SGD",
                        help="torch.optim class (default SGD, momentum 0.9)")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    print(f"fused optimizer: torch {torch.__version__}, torch.get_num_threads() = "
          f"{torch.get_num_threads()} (pinned), Python {platform.python_version()}, "
          f"{platform.machine()}")
    print(f"{args.optimizer}, {args.jobs} jobs of a 1-element parameter, a different lr "
          f"each; {args.steps} steps per run, median of {args.repeats} runs (min-max); "
          "speed-up = separate median / median (min: fastest / fastest)")
    print(f"fused parameters equal the separate ones after 50 steps: "
          f"{'yes' if same_values(args.optimizer, args.jobs, 50) else 'NO'}")
    print(load_line())
    print(f"{'variant':<12} {'us/step':>10}  {'(min-max)':>17}  {'speed-up':>8}  "
          f"{'min':>10}")
    samples = measure(args.optimizer, args.jobs, args.steps, args.repeats)
    for variant, values in samples.items():
        print(format_row(variant, values, samples["separate"]), flush=True)
    print(load_line())


if __name__ == "__main__":
    main()
