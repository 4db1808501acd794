"""Fused against unfused sweeps through the real worker, and against a bare PyTorch loop.

Two 100-point lr x momentum sweeps (SGD), 1,000 steps per point:

* ``seed``: the seed problem (``x**2 -> 16``, full batch);
* ``digits``: an MLP (64-128-64-10) on scikit-learn's digits, mini-batches of 32.

Each sweep is POSTed to the API (in this process) with ``fuse`` on and off, and one
``optimlab worker`` process (a real Celery worker, concurrency 1) trains it; the time is
from the POST until the sweep reports every job finished. ``bare`` is a hand-written
PyTorch loop per point (the optimizer, ``loss.item()`` every step), run one point after
another in this process: it is measured on ``--bare-points`` points and scaled to the
sweep's size (it says so). The fused sweep is timed ``--repeats`` more times after the
worker's first one, and their median is compared (the first is shown too: it pays for
the worker's first use of the fused path). ``engine`` rows time the training alone, in
this process, with sinks that drop the points: ``run_fused`` over all points against
``run_training`` point by point (also measured on ``--bare-points`` and scaled): what
fusion saves before the database stores the same number of points either way.
Everything runs in the same invocation, on the embedded stack (SQLite and the folder
broker in a temporary data folder). The bare loop and the engine rows use one torch thread;
the worker sizes its pool child's threads to its share of the cores, as in production.

    .venv/bin/python bench/fused_sweep.py                      # both problems, ~15 min here
    .venv/bin/python bench/fused_sweep.py --problems seed --points 100 --steps 1000
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from fastapi.testclient import TestClient
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from optimlab.migrations import upgrade
from optimlab.service.api.main import create_app
from optimlab.service.db.connection import make_engine
from optimlab.service.db.workers import live_workers
from optimlab.service.settings import Settings
from optimlab.worker.allocator import keep_freed_memory
from optimlab.worker.engine.data import load_dataset, prepare_split
from optimlab.worker.engine.fused.loop import run_fused
from optimlab.worker.engine.fused.probe import choose_mode
from optimlab.worker.engine.loop import run_training
from optimlab.worker.engine.numerics import reproducible_products
from optimlab.worker.engine.sink import JobUpdate
from optimlab.worker.spec import JobSpec

SEED_BASE: dict[str, Any] = {
    "model": {"kind": "expression", "expression": "x**2", "parameters": {"x": [1.0]}},
    "data": {"kind": "inline", "targets": [16.0]}, "loss": "mse",
    "optimizer": {"name": "SGD", "lr": 0.001}}
DIGITS_BASE: dict[str, Any] = {
    "model": {"kind": "mlp", "hidden": [128, 64]},
    "data": {"kind": "sklearn", "name": "digits", "val_fraction": 0.2, "standardize": True},
    "optimizer": {"name": "SGD", "lr": 0.01}, "batch_size": 32}


def axes(points: int, problem: str) -> tuple[list[float], list[float]]:
    side = max(1, round(points ** 0.5))
    lo, hi = (0.0005, 0.005) if problem == "seed" else (0.005, 0.1)
    lrs = [lo * (hi / lo) ** (k / max(1, side - 1)) for k in range(side)]
    momenta = [0.9 * k / max(1, side - 1) for k in range(side)]
    return lrs, momenta


def sweep_request(problem: str, points: int, steps: int, *, fuse: bool) -> dict[str, Any]:
    lrs, momenta = axes(points, problem)
    base = {**(SEED_BASE if problem == "seed" else DIGITS_BASE), "steps": steps}
    return {"name": f"bench {problem}", "base": base, "fuse": fuse,
            "axes": {"optimizer.lr": lrs, "optimizer.momentum": momenta}}


def bare_seed(lr: float, momentum: float, steps: int) -> float:
    x = torch.tensor([1.0], requires_grad=True)
    target = torch.tensor([16.0])
    opt = torch.optim.SGD([x], lr=lr, momentum=momentum)
    loss_value = 0.0
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(x**2, target)
        loss_value = loss.item()
        loss.backward()
        opt.step()
    return loss_value


def bare_digits(lr: float, momentum: float, steps: int) -> float:
    spec = JobSpec.model_validate({**DIGITS_BASE, "steps": steps})
    split = prepare_split(load_dataset(spec.data, seed=0, source=None), spec.data, seed=0)
    features, targets = split.train.features(), split.train.targets
    assert targets is not None
    loader = DataLoader(TensorDataset(features, targets.long()), batch_size=32, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                          nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    done, loss_value = 0, 0.0
    while done < steps:
        for x, y in loader:
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss_value = loss.item()
            loss.backward()
            opt.step()
            done += 1
            if done == steps:
                break
    return loss_value


BARE: dict[str, Callable[[float, float, int], float]] = {"seed": bare_seed,
                                                         "digits": bare_digits}


def time_bare(problem: str, points: int, sample: int, steps: int) -> tuple[float, int]:
    lrs, momenta = axes(points, problem)
    grid = [(lr, m) for lr in lrs for m in momenta][:sample]
    started = time.perf_counter()
    for lr, m in grid:
        BARE[problem](lr, m, steps)
    elapsed = time.perf_counter() - started
    return elapsed * (len(lrs) * len(momenta)) / len(grid), len(grid)


class DropAll:
    def write(self, updates: Sequence[JobUpdate]) -> list[bool]:
        return [True] * len(updates)


def time_engine(problem: str, points: int, sample: int, steps: int) -> tuple[float, float]:
    """(fused, alone scaled) seconds of training only, points dropped."""
    request = sweep_request(problem, points, steps, fuse=True)
    specs = []
    for lr in request["axes"]["optimizer.lr"]:
        for momentum in request["axes"]["optimizer.momentum"]:
            raw = {**request["base"], "optimizer": {"name": "SGD", "lr": lr,
                                                    "momentum": momentum}}
            specs.append(JobSpec.model_validate(raw))
    mode, reason = choose_mode(specs)
    if mode is None:
        raise SystemExit(f"not fusable: {reason}")
    started = time.perf_counter()
    run_fused(specs, DropAll(), mode=mode)
    fused = time.perf_counter() - started
    started = time.perf_counter()
    for spec in specs[:sample]:
        run_training(spec, DropAll())
    alone = (time.perf_counter() - started) * len(specs) / min(sample, len(specs))
    return fused, alone


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OPTIMLAB_DATA_DIR": str(settings.data_dir),
           "OPTIMLAB_DATABASE_URL": "", "OPTIMLAB_BROKER_URL": "",
           "OPTIMLAB_QUEUE_PREFIX": settings.queue_prefix, "OMP_NUM_THREADS": "1"}
    output = open(log, "ab")  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-m", "optimlab.service.cli", "worker",
                                "--gpus", "none", "--concurrency", "1"], env=env,
                               stdout=output, stderr=subprocess.STDOUT)
    db = make_engine(settings.database)
    deadline = time.monotonic() + 120
    while True:
        with db.connect() as conn:
            if live_workers(conn, within=timedelta(minutes=1)):
                return process
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the worker did not start; see {log}")
        time.sleep(0.2)


def time_sweep(client: TestClient, request: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    response = client.post("/v1/sweeps", json=request)
    if response.status_code != 201:
        raise SystemExit(response.text)
    sweep_id = response.json()["id"]
    while True:
        body: dict[str, Any] = client.get(f"/v1/sweeps/{sweep_id}").json()
        elapsed = time.perf_counter() - started
        if body["status"] == "finished":
            return elapsed, body
        # Seen within ~1% of the time (a GET takes ~15 ms), without polling a long sweep
        # so often that this process takes a core from the worker.
        time.sleep(min(0.25, max(0.01, elapsed / 100)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", choices=["seed", "digits"],
                        default=["seed", "digits"])
    parser.add_argument("--points", type=int, default=100)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--bare-points", type=int, default=10,
                        help="points of the bare loop actually run (then scaled)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="fused sweeps timed after the first (the median is compared)")
    args = parser.parse_args()
    reproducible_products()  # as the worker does, for the runs in this process
    keep_freed_memory()
    torch.set_num_threads(1)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}; one torch thread here, the worker's child "
          f"{os.cpu_count()}; embedded stack (SQLite + folder broker)")
    with tempfile.TemporaryDirectory() as folder:
        # a private stack of one user, as `optimlab up` on a laptop: no API keys
        settings = Settings(data_dir=Path(folder), database_url=None, broker_url=None,
                            queue_prefix="bench-", auth="off")
        upgrade(settings.database)
        worker = start_worker(settings, Path(folder) / "worker.log")
        try:
            with TestClient(create_app(settings)) as client:
                for problem in args.problems:
                    report(client, problem, args)
        finally:
            worker.terminate()
            worker.wait(30)


def report(client: TestClient, problem: str, args: argparse.Namespace) -> None:
    request = sweep_request(problem, args.points, args.steps, fuse=True)
    cold, body = time_sweep(client, request)  # the worker's first sweep of this problem
    warm = sorted(time_sweep(client, request)[0] for _ in range(args.repeats))
    fused = statistics.median(warm)
    tasks = [len(t) for t in body["fusion"]["tasks"]]
    unfused, _ = time_sweep(client, sweep_request(problem, args.points, args.steps,
                                                  fuse=False))
    bare, sampled = time_bare(problem, args.points, args.bare_points, args.steps)
    engine_fused, engine_alone = time_engine(problem, args.points, args.bare_points,
                                             args.steps)
    size = body["size"]
    print(f"\n{problem}: {size} points x {args.steps} steps, fused tasks {tasks}, "
          f"counts {body['counts']}")
    print("| variant | wall s | s per point | unfused / this |\n|---|---:|---:|---:|")
    rows = (("unfused, real worker", unfused),
            (f"fused, real worker (median of {len(warm)}: "
             f"{', '.join(f'{w:.2f}' for w in warm)})", fused),
            ("fused, real worker, its first sweep of this problem", cold),
            (f"bare loop (measured on {sampled}, scaled)", bare))
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} | {seconds / size:.4f} | {unfused / seconds:.1f}x |")
    print(f"fused is {bare / fused:.1f}x faster than the bare loop run point by point")
    print(f"engine only (no storage): run_training point by point {engine_alone:.2f} s "
          f"(scaled from {min(args.bare_points, size)}), run_fused {engine_fused:.2f} s: "
          f"{engine_alone / engine_fused:.1f}x; bare loop / run_fused "
          f"{bare / engine_fused:.1f}x")


if __name__ == "__main__":
    main()
