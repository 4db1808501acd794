"""Run the example specs as a worker runs a job, and keep the figures the README quotes.

Each spec goes through the engine's ``run_training``, the function a worker calls, with MKL's
strict reproducible products as a worker sets them, so a job POSTed to ``make run`` gives the
same figures. A worker gives its jobs a torch thread per core; the strict mode makes the
figures independent of that number (on two cores here, results.json came out the same both
ways), and one thread is several times faster on a machine whose cores are busy.

What is kept is read from the recorded history: the summary's losses, the last value of
each recorded parameter, the lr's range, and for runs that evaluate, the last evaluation
and how often the true objective (``train_loss_full``) went up from one evaluation to the
next.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch

from optimlab.worker.engine import ListSink, run_training
from optimlab.worker.engine.numerics import reproducible_products
from optimlab.worker.spec import JobSpec

EXAMPLES = Path(__file__).resolve().parent
RESULTS = EXAMPLES / "results.json"
# The fast examples' figures on other CPU capabilities than results.json's: a network's
# last bits depend on the SIMD kernels torch picks (AVX2 or AVX512), and a chaotic run (the
# cyclic one) ends elsewhere from them. ``python -m examples --this-cpu`` adds this CPU's.
REPRODUCTIONS = EXAMPLES / "reproductions.json"
# 14,380 steps of one sample each, about 10 s apiece here: only `make examples` runs them.
SLOW = ("digits_sgd_batch_1", "digits_sgd_batch_1_lr_0.01")
# The cycling-lr question again over ten seeds: the cyclic run's end is chaotic (README).
SPREAD = ("digits_sgd_lr_cyclic", "digits_sgd_lr_constant")
SPREAD_SEEDS = tuple(range(10))

Figures = dict[str, Any]


def prepare_process() -> None:
    """What a worker does before it trains (worker/launch.py), on one thread."""
    reproducible_products()
    torch.set_num_threads(1)


def example_names() -> list[str]:
    return sorted(path.stem for path in EXAMPLES.glob("*.json")
                  if path not in (RESULTS, REPRODUCTIONS))


def fast_names() -> list[str]:
    return [name for name in example_names() if name not in SLOW]


def example_spec(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return spec


def run_example(raw: dict[str, Any]) -> Figures:
    sink = ListSink()
    summary = run_training(JobSpec.model_validate(raw), sink)
    series: dict[str, list[float]] = defaultdict(list)
    for _, name, value in sorted(sink.points):
        series[name].append(value)
    figures: Figures = {
        "steps": summary.steps_done, "outcome": summary.outcome,
        "initial_loss": summary.initial_loss, "final_loss": summary.final_loss,
        "best_loss": summary.best_loss, "best_step": summary.best_step,
        "lr_min": min(series["lr"]), "lr_max": max(series["lr"]),
        "parameters": {name.removeprefix("param."): values[-1]
                       for name, values in series.items() if name.startswith("param.")},
    }
    if "train_loss_full" in series:
        full = series["train_loss_full"]
        figures |= {"evaluation": summary.evaluation, "evaluations": len(full),
                    "train_loss_full_increases": sum(b > a for a, b in pairwise(full)),
                    "best_val_loss": summary.best_val_loss,
                    "best_val_step": summary.best_val_step}
    return figures


def run_spread(name: str) -> list[Figures]:
    """The last evaluation of ``name`` run with each of SPREAD_SEEDS."""
    runs = []
    for seed in SPREAD_SEEDS:
        evaluation = run_example({**example_spec(name), "seed": seed})["evaluation"]
        runs.append({"seed": seed, "val_accuracy": evaluation["val_accuracy"],
                     "val_loss": evaluation["val_loss"]})
    return runs


def environment() -> dict[str, Any]:
    """What the network examples' last bits depend on (the CPU's kernels, MKL's mode)."""
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "mkl_cbwr": os.environ.get("MKL_CBWR"), "threads": torch.get_num_threads()}


def collect(names: list[str], *, spread: bool = True) -> dict[str, Any]:
    results: dict[str, Any] = {
        "environment": environment(),
        "slow": [name for name in names if name in SLOW],
        "examples": {name: run_example(example_spec(name)) for name in names},
    }
    if spread:
        results["seed_spread"] = {name: run_spread(name) for name in SPREAD}
    return results


def load_results() -> dict[str, Any]:
    results: dict[str, Any] = json.loads(RESULTS.read_text())
    return results


def write_results(results: dict[str, Any]) -> None:
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")


def load_reproductions() -> dict[str, dict[str, Any]]:
    """CPU capability -> the fast examples' figures and the seed spread made on one."""
    if not REPRODUCTIONS.exists():
        return {}
    reproductions: dict[str, dict[str, Any]] = json.loads(REPRODUCTIONS.read_text())
    return reproductions


def write_reproduction(results: dict[str, Any]) -> None:
    reproductions = load_reproductions()
    reproductions[results["environment"]["cpu_capability"]] = results
    REPRODUCTIONS.write_text(json.dumps(dict(sorted(reproductions.items())), indent=1) + "\n")


def figures_for_this_cpu() -> dict[str, Any] | None:
    """The stored figures a fresh run here must give: results.json's when it was made on
    this CPU capability, else this capability's reproduction (None: there is none)."""
    results = load_results()
    capability = torch.backends.cpu.get_cpu_capability()
    if results["environment"]["cpu_capability"] == capability:
        return results
    return load_reproductions().get(capability)
