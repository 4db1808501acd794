"""The README's example figures are examples/results.json, and a fresh run still gives them.

``make examples`` runs every spec and renders the README's section from results.json. Here
(a) the README must hold exactly what the renderer makes of results.json (a figure edited by
hand, or results.json regenerated without the README, fails), and (b) every example but the
two slow ones, and the seed spread, run again must give exactly the stored figures (a change
of the engine, of torch or of a spec that moves a stated number fails). The stored figures
are results.json's on the CPU capability it was made on (AVX512, say), and on another one
(AVX2) that capability's in examples/reproductions.json: torch's SIMD kernels round in
their own order, and the networks' last bits, the cyclic run's end with them, follow.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from examples.figures import (
    SLOW,
    SPREAD,
    environment,
    example_names,
    example_spec,
    fast_names,
    figures_for_this_cpu,
    load_reproductions,
    load_results,
    run_example,
    run_spread,
)
from examples.readme import README, render, section
from optimlab.worker.engine import ListSink, run_training
from optimlab.worker.spec import JobSpec

RESULTS = load_results()
REGENERATE = "run `make examples` and commit examples/results.json with README.md"
ADD_THIS_CPU = ("no figures were stored for this CPU capability: run `python -m examples "
                "--this-cpu` and commit examples/reproductions.json")


@pytest.fixture
def one_thread() -> Iterator[None]:
    """As `make examples` runs (MKL's strict mode, set by conftest, makes the bits the same)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def expected() -> dict[str, Any]:
    figures = figures_for_this_cpu()
    assert figures is not None, f"{ADD_THIS_CPU} (this run has {environment()})"
    return figures


def stored_on(expected: dict[str, Any]) -> str:
    again = REGENERATE if expected["environment"] == RESULTS["environment"] else (
        "run `python -m examples --this-cpu` and commit examples/reproductions.json")
    return (f"the figures were made with {expected['environment']}; this run has "
            f"{environment()}: {again}")


def test_the_readme_section_is_what_the_renderer_makes_of_results_json() -> None:
    assert section(README.read_text()) == render(RESULTS), (
        f"README.md's examples section is not rendered from examples/results.json: {REGENERATE}")


def test_results_json_has_every_example_and_names_the_slow_ones() -> None:
    assert sorted(RESULTS["examples"]) == example_names()
    assert RESULTS["slow"] == [name for name in example_names() if name in SLOW]
    assert sorted(RESULTS["seed_spread"]) == sorted(SPREAD)
    assert len(fast_names()) == len(example_names()) - len(SLOW)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", fast_names())
def test_a_fresh_run_gives_the_stored_figures(name: str, expected: dict[str, Any]) -> None:
    fresh = run_example(example_spec(name))
    assert json.loads(json.dumps(fresh)) == expected["examples"][name], (
        f"{name}: a fresh run differs from the stored figures ({stored_on(expected)})")


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", SPREAD)
def test_a_fresh_seed_spread_gives_the_stored_figures(name: str,
                                                      expected: dict[str, Any]) -> None:
    assert run_spread(name) == expected["seed_spread"][name], (
        f"{name} over seeds: a fresh run differs from the stored figures "
        f"({stored_on(expected)})")


def test_each_reproduction_holds_every_fast_example_on_another_cpu() -> None:
    for capability, figures in load_reproductions().items():
        assert capability != RESULTS["environment"]["cpu_capability"], capability
        assert figures["environment"]["cpu_capability"] == capability
        assert sorted(figures["examples"]) == fast_names(), capability
        assert sorted(figures["seed_spread"]) == sorted(SPREAD), capability


def test_the_renderer_fails_a_hand_edited_figure() -> None:
    edited = json.loads(json.dumps(RESULTS))
    edited["examples"]["digits_sgd_lr_cyclic"]["evaluation"]["val_accuracy"] = 0.947
    assert "0.947 val accuracy" in render(edited)
    assert render(edited) != section(README.read_text())


# --------------------------------------------------------------------------- the cyclic example
# The README once said 0.947 val accuracy here, and a user got 0.7465: the engine is not at
# fault, it runs the plain PyTorch script of this spec bit for bit; the run itself is chaotic.


def plain_cyclic_history() -> dict[str, list[float]]:
    """digits_sgd_lr_cyclic.json written by hand from its spec, data loading included."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = torch.tensor(digits.data, dtype=torch.float32), torch.tensor(digits.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    n_val = round(len(x) * 0.2)
    val_rows, train_rows = perm[:n_val].sort().values, perm[n_val:].sort().values
    x_train, y_train, x_val, y_val = x[train_rows], y[train_rows], x[val_rows], y[val_rows]
    mean, std = x_train.mean(dim=0), x_train.std(dim=0, unbiased=False)
    std = torch.where(std > 0, std, 1.0)
    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                          nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.CyclicLR(opt, base_lr=0.01, max_lr=0.3,
                                                  step_size_up=90)
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    loss_fn = nn.CrossEntropyLoss()
    history: dict[str, list[float]] = {name: [] for name in (
        "loss", "lr", "momentum", "val_loss", "val_accuracy")}
    steps = 12 * len(loader)
    step = 0
    for _ in range(12):
        for xb, yb in loader:
            history["lr"].append(opt.param_groups[0]["lr"])
            history["momentum"].append(opt.param_groups[0]["momentum"])
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            history["loss"].append(loss.item())
            loss.backward()
            opt.step()
            step += 1
            if step % 45 == 0 or step == steps:
                with torch.no_grad():
                    output = model.eval()(x_val)
                    history["val_loss"].append(loss_fn(output, y_val).item())
                    history["val_accuracy"].append(
                        int((output.argmax(dim=1) == y_val).sum()) / len(y_val))
                model.train()
            scheduler.step()
    return history


@pytest.mark.usefixtures("one_thread")
def test_the_cyclic_example_is_its_plain_pytorch_script_bit_for_bit(
        expected: dict[str, Any]) -> None:
    sink = ListSink()
    run_training(JobSpec.model_validate(example_spec("digits_sgd_lr_cyclic")), sink)
    plain = plain_cyclic_history()
    engine: dict[str, Any] = {name: sink.series(name) for name in plain}
    assert engine == plain
    assert plain["val_accuracy"][-1] == expected["examples"]["digits_sgd_lr_cyclic"][
        "evaluation"]["val_accuracy"]
