"""The engine's histories equal those of plain, hand-written PyTorch training loops.

Each case is run twice: once through ``run_training`` (a JSON-style spec in,
metrics out through a ``ListSink``), and once by the loop below, which builds its
own tensors, calls ``torch.optim`` and ``torch.optim.lr_scheduler`` directly and
draws mini-batches from ``DataLoader(TensorDataset(...), shuffle=True)`` with a
seeded generator: the training script a user would write. Every recorded value
(loss before the update, learning rate and cycled momentum used, the gradient's norm,
the update's and the parameters' norms, parameters after the update) must agree to a
relative 1e-6; in practice they are bit-equal.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import get_total_norm
from torch.optim import lr_scheduler as sched
from torch.utils.data import DataLoader, TensorDataset

from optimlab.worker.engine.problem import build_problem
from optimlab.worker.spec import JobSpec
from tests.worker.engine.histories import (
    REL_TOL,
    History,
    assert_same_history,
    engine_history,
)

optim = torch.optim

# --------------------------------------------------------------------------- problems
# Data is generated here from a fixed seed and handed to the engine as plain lists,
# exactly as a client would send it.

_rng = np.random.default_rng(20240607)
LINREG_U: list[float] = _rng.uniform(-2.0, 2.0, size=20).round(4).tolist()
LINREG_T: list[float] = [3.0 * u - 0.5 + float(n)
                         for u, n in zip(LINREG_U, _rng.normal(0.0, 0.1, size=20), strict=True)]
VECTOR_U: list[list[float]] = _rng.uniform(-1.0, 1.0, size=(20, 3)).tolist()
VECTOR_T: list[list[float]] = [[2.0 * a + 0.1, -1.0 * b, 0.5 * c - 0.3] for a, b, c in VECTOR_U]


@dataclass(frozen=True)
class Problem:
    """A problem as a spec fragment and, independently, as tensors and a Python objective."""

    spec: dict[str, Any]
    parameters: Callable[[], dict[str, torch.Tensor]]  # fresh initial values
    data: Callable[[], tuple[torch.Tensor, torch.Tensor] | None]  # (inputs, targets)
    objective: Callable[[dict[str, torch.Tensor], Any], torch.Tensor]  # (params, batch)


def _mse(params: dict[str, torch.Tensor], batch: Any) -> torch.Tensor:
    u, t = batch
    return F.mse_loss(params["w"] * u + params["b"], t)


def standardized(t: torch.Tensor) -> torch.Tensor:
    """A script's standardisation: per feature, population std, constants only centred."""
    mean = t.mean(dim=0)
    std = t.std(dim=0, unbiased=False)
    return (t - mean) / torch.where(std > 0, std, 1.0)


PROBLEMS: dict[str, Problem] = {
    # The seed: x**2 fitted to 16 (a one-element parameter and target).
    "seed": Problem(
        spec={"model": {"kind": "expression", "expression": "x**2", "parameters": {"x": [1.0]}},
              "data": {"kind": "inline", "targets": [16.0]}, "loss": "mse"},
        parameters=lambda: {"x": torch.ones(1)},
        data=lambda: (torch.zeros(1), torch.tensor([16.0])),
        objective=lambda p, batch: torch.nn.MSELoss()(p["x"] ** 2, batch[1]),
    ),
    # Rosenbrock minimised directly: 0-d parameters, no data, loss "none".
    "rosenbrock": Problem(
        spec={"model": {"kind": "expression",
                        "expression": "(1 - x)**2 + 100*(y - x**2)**2",
                        "parameters": {"x": -1.5, "y": 2.0}},
              "loss": "none"},
        parameters=lambda: {"x": torch.tensor(-1.5), "y": torch.tensor(2.0)},
        data=lambda: None,
        objective=lambda p, batch: (1 - p["x"]) ** 2 + 100 * (p["y"] - p["x"] ** 2) ** 2,
    ),
    # A straight line through 20 noisy points.
    "linreg": Problem(
        spec={"model": {"kind": "expression", "expression": "w*u + b",
                        "parameters": {"w": 0.0, "b": 0.0}},
              "data": {"kind": "inline", "inputs": {"u": LINREG_U}, "targets": LINREG_T},
              "loss": "mse"},
        parameters=lambda: {"w": torch.tensor(0.0), "b": torch.tensor(0.0)},
        data=lambda: (torch.tensor(LINREG_U), torch.tensor(LINREG_T)),
        objective=_mse,
    ),
    # Vector parameters (recorded element by element): a per-column line, 20 x 3 data.
    "vector": Problem(
        spec={"model": {"kind": "expression", "expression": "w*u + b",
                        "parameters": {"w": [0.5, 0.5, 0.5], "b": [0.0, 0.0, 0.0]}},
              "data": {"kind": "inline", "inputs": {"u": VECTOR_U}, "targets": VECTOR_T},
              "loss": "mse"},
        parameters=lambda: {"w": torch.tensor([0.5, 0.5, 0.5]), "b": torch.zeros(3)},
        data=lambda: (torch.tensor(VECTOR_U), torch.tensor(VECTOR_T)),
        objective=_mse,
    ),
    # The line again, inputs and targets standardised (the targets are around 3u - 0.5).
    "linreg_std": Problem(
        spec={"model": {"kind": "expression", "expression": "w*u + b",
                        "parameters": {"w": 0.0, "b": 0.0}},
              "data": {"kind": "inline", "inputs": {"u": LINREG_U}, "targets": LINREG_T,
                       "standardize": True, "standardize_targets": True},
              "loss": "mse"},
        parameters=lambda: {"w": torch.tensor(0.0), "b": torch.tensor(0.0)},
        data=lambda: (standardized(torch.tensor(LINREG_U)),
                      standardized(torch.tensor(LINREG_T))),
        objective=_mse,
    ),
    # Per-column targets: each of the three target columns standardised on its own; the
    # inputs are left as they are.
    "vector_std": Problem(
        spec={"model": {"kind": "expression", "expression": "w*u + b",
                        "parameters": {"w": [0.5, 0.5, 0.5], "b": [0.0, 0.0, 0.0]}},
              "data": {"kind": "inline", "inputs": {"u": VECTOR_U}, "targets": VECTOR_T,
                       "standardize_targets": True},
              "loss": "mse"},
        parameters=lambda: {"w": torch.tensor([0.5, 0.5, 0.5]), "b": torch.zeros(3)},
        data=lambda: (torch.tensor(VECTOR_U), standardized(torch.tensor(VECTOR_T))),
        objective=_mse,
    ),
}

# --------------------------------------------------------------------------- optimizers
# key: (spec keywords, hand-written constructor, learning rate per problem)

OptimizerFactory = Callable[[list[torch.Tensor], float], torch.optim.Optimizer]
OPTIMIZERS: dict[str, tuple[dict[str, Any], OptimizerFactory, dict[str, float]]] = {
    "SGD": ({"name": "SGD"},
            lambda p, lr: optim.SGD(p, lr=lr),
            {"seed": 0.01, "rosenbrock": 1e-3, "linreg": 0.05, "vector": 0.2}),
    "SGD-momentum": ({"name": "SGD", "momentum": 0.9},
                     lambda p, lr: optim.SGD(p, lr=lr, momentum=0.9),
                     {"seed": 2e-3, "rosenbrock": 1e-3, "linreg": 0.02, "vector": 0.1}),
    "SGD-nesterov": ({"name": "SGD", "momentum": 0.9, "nesterov": True},
                     lambda p, lr: optim.SGD(p, lr=lr, momentum=0.9, nesterov=True),
                     {"seed": 2e-3, "rosenbrock": 1e-3, "linreg": 0.02, "vector": 0.1}),
    "SGD-wd-dampening": ({"name": "SGD", "momentum": 0.5, "dampening": 0.1,
                          "weight_decay": 0.01},
                         lambda p, lr: optim.SGD(p, lr=lr, momentum=0.5, dampening=0.1,
                                             weight_decay=0.01),
                         {"seed": 5e-3, "rosenbrock": 1e-3, "linreg": 0.05, "vector": 0.2}),
    "Adam": ({"name": "Adam"},
             lambda p, lr: optim.Adam(p, lr=lr),
             {"seed": 0.1, "rosenbrock": 0.05, "linreg": 0.05, "vector": 0.05}),
    "Adam-betas-amsgrad": ({"name": "Adam", "betas": [0.8, 0.99], "amsgrad": True},
                           lambda p, lr: optim.Adam(p, lr=lr, betas=(0.8, 0.99), amsgrad=True),
                           {"seed": 0.1, "rosenbrock": 0.05, "linreg": 0.05, "vector": 0.05}),
    "AdamW": ({"name": "AdamW", "weight_decay": 0.05},
              lambda p, lr: optim.AdamW(p, lr=lr, weight_decay=0.05),
              {"seed": 0.1, "rosenbrock": 0.05, "linreg": 0.05, "vector": 0.05}),
    "NAdam": ({"name": "NAdam"},
              lambda p, lr: optim.NAdam(p, lr=lr),
              {"seed": 0.1, "rosenbrock": 0.05, "linreg": 0.05, "vector": 0.05}),
    "RAdam": ({"name": "RAdam"},
              lambda p, lr: optim.RAdam(p, lr=lr),
              {"seed": 1e-3, "rosenbrock": 0.01, "linreg": 0.05, "vector": 0.05}),
    "Adamax": ({"name": "Adamax"},
               lambda p, lr: optim.Adamax(p, lr=lr),
               {"seed": 0.1, "rosenbrock": 0.05, "linreg": 0.05, "vector": 0.05}),
    "Adagrad": ({"name": "Adagrad"},
                lambda p, lr: optim.Adagrad(p, lr=lr),
                {"seed": 0.5, "rosenbrock": 0.1, "linreg": 0.5, "vector": 0.5}),
    "Adadelta": ({"name": "Adadelta"},
                 lambda p, lr: optim.Adadelta(p, lr=lr),
                 {"seed": 1.0, "rosenbrock": 1.0, "linreg": 1.0, "vector": 1.0}),
    "RMSprop": ({"name": "RMSprop"},
                lambda p, lr: optim.RMSprop(p, lr=lr),
                {"seed": 0.01, "rosenbrock": 0.01, "linreg": 0.01, "vector": 0.01}),
    "RMSprop-centered-momentum": ({"name": "RMSprop", "centered": True, "momentum": 0.5},
                                  lambda p, lr: optim.RMSprop(p, lr=lr, centered=True,
                                                          momentum=0.5),
                                  {"seed": 0.01, "rosenbrock": 1e-3, "linreg": 0.01,
                                   "vector": 0.01}),
    "Rprop": ({"name": "Rprop"},
              lambda p, lr: optim.Rprop(p, lr=lr),
              {"seed": 0.01, "rosenbrock": 0.01, "linreg": 0.01, "vector": 0.01}),
    "ASGD": ({"name": "ASGD"},
             lambda p, lr: optim.ASGD(p, lr=lr),
             {"seed": 0.01, "rosenbrock": 1e-3, "linreg": 0.05, "vector": 0.2}),
    "Adafactor": ({"name": "Adafactor"},
                  lambda p, lr: optim.Adafactor(p, lr=lr),
                  {"seed": 0.1, "rosenbrock": 0.05, "linreg": 0.05, "vector": 0.05}),
    "LBFGS": ({"name": "LBFGS", "max_iter": 5, "history_size": 5},
              lambda p, lr: optim.LBFGS(p, lr=lr, max_iter=5, history_size=5),
              {"seed": 0.1, "rosenbrock": 0.5, "linreg": 0.5, "vector": 0.5}),
    "LBFGS-strong-wolfe": ({"name": "LBFGS", "line_search_fn": "strong_wolfe"},
                           lambda p, lr: optim.LBFGS(p, lr=lr, line_search_fn="strong_wolfe"),
                           {"seed": 1.0, "rosenbrock": 1.0, "linreg": 1.0, "vector": 1.0}),
}

# --------------------------------------------------------------------------- schedules
# key: builder of (spec keywords, hand-written constructor), given the optimizer's lr and
# the job's steps.

SchedulerFactory = Callable[[torch.optim.Optimizer], Any]
ScheduleBuilder = Callable[[float, int], tuple[dict[str, Any] | None, SchedulerFactory | None]]
SCHEDULES: dict[str, ScheduleBuilder] = {
    "none": lambda lr, steps: (None, None),
    "StepLR": lambda lr, steps: (
        {"name": "StepLR", "step_size": 10, "gamma": 0.5},
        lambda o: sched.StepLR(o, step_size=10, gamma=0.5)),
    "MultiStepLR": lambda lr, steps: (
        {"name": "MultiStepLR", "milestones": [5, 15, 40], "gamma": 0.3},
        lambda o: sched.MultiStepLR(o, milestones=[5, 15, 40], gamma=0.3)),
    "ExponentialLR": lambda lr, steps: (
        {"name": "ExponentialLR", "gamma": 0.97},
        lambda o: sched.ExponentialLR(o, gamma=0.97)),
    "CosineAnnealingLR": lambda lr, steps: (
        {"name": "CosineAnnealingLR", "T_max": 30, "eta_min": lr / 50},
        lambda o: sched.CosineAnnealingLR(o, T_max=30, eta_min=lr / 50)),
    "CosineAnnealingLR-default-T_max": lambda lr, steps: (
        {"name": "CosineAnnealingLR"},
        lambda o: sched.CosineAnnealingLR(o, T_max=steps)),
    "CosineAnnealingWarmRestarts": lambda lr, steps: (
        {"name": "CosineAnnealingWarmRestarts", "T_0": 10, "T_mult": 2},
        lambda o: sched.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2)),
    "OneCycleLR-total_steps": lambda lr, steps: (
        {"name": "OneCycleLR", "max_lr": lr, "total_steps": steps + 15},
        lambda o: sched.OneCycleLR(o, max_lr=lr, total_steps=steps + 15)),
    "OneCycleLR-default-total_steps": lambda lr, steps: (
        {"name": "OneCycleLR", "max_lr": lr, "pct_start": 0.25, "anneal_strategy": "linear"},
        lambda o: sched.OneCycleLR(o, max_lr=lr, total_steps=steps, pct_start=0.25,
                                   anneal_strategy="linear")),
    "CyclicLR": lambda lr, steps: (
        {"name": "CyclicLR", "base_lr": lr / 10, "max_lr": lr, "step_size_up": 7,
         "mode": "triangular2"},
        lambda o: sched.CyclicLR(o, base_lr=lr / 10, max_lr=lr, step_size_up=7,
                                 mode="triangular2")),
    "ReduceLROnPlateau": lambda lr, steps: (
        {"name": "ReduceLROnPlateau", "patience": 1, "factor": 0.5, "threshold": 0.05},
        lambda o: sched.ReduceLROnPlateau(o, patience=1, factor=0.5, threshold=0.05)),
    "LambdaLR": lambda lr, steps: (
        {"name": "LambdaLR", "lr_lambda": "0.95**step"},
        lambda o: sched.LambdaLR(o, lr_lambda=lambda step: 0.95**step)),
    "LambdaLR-functions": lambda lr, steps: (
        {"name": "LambdaLR", "lr_lambda": "0.5*(1 + cos(pi*step/40)) + exp(-step)/10"},
        lambda o: sched.LambdaLR(
            o, lr_lambda=lambda s: 0.5 * (1 + math.cos(math.pi * s / 40)) + math.exp(-s) / 10)),
    "MultiplicativeLR": lambda lr, steps: (
        {"name": "MultiplicativeLR", "lr_lambda": "1 - 0.2/(epoch + 4)"},
        lambda o: sched.MultiplicativeLR(o, lr_lambda=lambda epoch: 1 - 0.2 / (epoch + 4))),
    "PolynomialLR": lambda lr, steps: (
        {"name": "PolynomialLR", "total_iters": 30, "power": 2.0},
        lambda o: sched.PolynomialLR(o, total_iters=30, power=2.0)),
    "SequentialLR": lambda lr, steps: (
        {"name": "SequentialLR",
         "schedulers": [{"name": "LinearLR", "start_factor": 0.1, "total_iters": 5},
                        {"name": "ExponentialLR", "gamma": 0.95}],
         "milestones": [5]},
        lambda o: sched.SequentialLR(
            o, schedulers=[sched.LinearLR(o, start_factor=0.1, total_iters=5),
                           sched.ExponentialLR(o, gamma=0.95)],
            milestones=[5])),
    "ChainedScheduler": lambda lr, steps: (
        {"name": "ChainedScheduler",
         "schedulers": [{"name": "ConstantLR", "factor": 0.5, "total_iters": 4},
                        {"name": "ExponentialLR", "gamma": 0.97}]},
        lambda o: sched.ChainedScheduler([sched.ConstantLR(o, factor=0.5, total_iters=4),
                                          sched.ExponentialLR(o, gamma=0.97)])),
}

# Schedules that cycle momentum (or Adam's beta1) along with the lr: the job records it.
CYCLES_MOMENTUM = {"OneCycleLR-total_steps", "OneCycleLR-default-total_steps", "CyclicLR"}

# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    problem: str
    optimizer: str
    schedule: str = "none"
    batch_size: int | None = None
    steps: int = 60
    seed: int = 0
    device: str = "cpu"
    lr_override: float | None = None

    @property
    def id(self) -> str:
        batch = "full" if self.batch_size is None else f"batch{self.batch_size}"
        seed = f"-seed{self.seed}" if self.seed else ""
        return f"{self.problem}-{batch}{seed}-{self.optimizer}-{self.schedule}-{self.device}"

    @property
    def lr(self) -> float:
        if self.lr_override is not None:
            return self.lr_override
        return OPTIMIZERS[self.optimizer][2][self.problem]


def _steps(problem: str, optimizer: str) -> int:
    if optimizer.startswith("LBFGS"):
        return 15  # each step runs up to 20 evaluations
    return {"seed": 30, "rosenbrock": 150, "linreg": 60, "vector": 40}[problem]


def _cases() -> list[Case]:
    cases: list[Case] = []
    # Every optimizer on every problem, without a schedule; mini-batches with a full
    # last batch (4 of 20 rows) and a partial one (7, 7, 6).
    for optimizer in OPTIMIZERS:
        for problem, batch_size in [("seed", None), ("rosenbrock", None), ("linreg", None),
                                    ("linreg", 4), ("vector", 7)]:
            cases.append(Case(problem, optimizer, batch_size=batch_size,
                              steps=_steps(problem, optimizer)))
    # Every schedule with a momentum optimizer and an adaptive one, on a deterministic
    # problem and on partial mini-batches.
    for schedule in SCHEDULES:
        if schedule == "none":
            continue
        for optimizer in ("SGD-momentum", "Adam"):
            for problem, batch_size in [("rosenbrock", None), ("linreg", 7)]:
                cases.append(Case(problem, optimizer, schedule, batch_size=batch_size,
                                  steps=_steps(problem, optimizer)))
    # A few more: closure-based LBFGS under schedules, other optimizers under the
    # schedules that also cycle momentum or betas, the seed on a plateau.
    cases += [
        Case("linreg", "LBFGS", "StepLR", batch_size=4, steps=25),
        Case("rosenbrock", "LBFGS", "ReduceLROnPlateau", steps=25),
        Case("vector", "LBFGS-strong-wolfe", "CosineAnnealingLR-default-T_max", steps=20),
        Case("linreg", "NAdam", "OneCycleLR-default-total_steps", batch_size=4),
        Case("linreg", "RMSprop-centered-momentum", "CyclicLR", batch_size=7),
        Case("vector", "AdamW", "SequentialLR", batch_size=4),
        Case("vector", "SGD-nesterov", "OneCycleLR-total_steps", batch_size=7),
        Case("seed", "SGD", "ReduceLROnPlateau", steps=40),
        Case("seed", "Adagrad", "LambdaLR-functions", steps=40),
        Case("linreg", "Adam", "none", batch_size=4, seed=12345, steps=60),
        Case("linreg", "SGD", "StepLR", batch_size=20, steps=30),  # batch = whole set, shuffled
        Case("linreg", "SGD", "none", batch_size=50, steps=30),  # batch larger than the set
        # standardised inputs and targets, full batch and mini-batches
        Case("linreg_std", "SGD", steps=60, lr_override=0.05),
        Case("linreg_std", "Adam", batch_size=4, steps=60, lr_override=0.05),
        Case("linreg_std", "SGD-momentum", "StepLR", batch_size=7, steps=60,
             lr_override=0.02),
        Case("vector_std", "SGD", steps=40, lr_override=0.2),
        Case("vector_std", "RMSprop", batch_size=7, steps=40, lr_override=0.01),
    ]
    return cases


CASES = _cases()

# --------------------------------------------------------------------------- the two runs



def batches(problem: Problem, batch_size: int | None, seed: int,
            device: torch.device) -> Iterator[Any]:
    """The batches of a plain training script, step after step, epoch after epoch."""
    data = problem.data()
    if data is None:
        while True:
            yield None
    inputs, targets = (t.to(device) for t in data)
    if batch_size is None:
        while True:
            yield inputs, targets
    loader = DataLoader(TensorDataset(inputs, targets), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    while True:
        yield from loader


def reference_history(case: Case) -> History:
    """The loop a user writes by hand, recording what the engine promises to record."""
    device = torch.device(case.device)
    problem = PROBLEMS[case.problem]
    _, make_optimizer, _ = OPTIMIZERS[case.optimizer]
    _, make_scheduler = SCHEDULES[case.schedule](case.lr, case.steps)
    params = {name: t.to(device).requires_grad_() for name, t in problem.parameters().items()}
    tensors = list(params.values())
    opt = make_optimizer(tensors, case.lr)
    scheduler = make_scheduler(opt) if make_scheduler is not None else None
    momentum = None
    if case.schedule in CYCLES_MOMENTUM:
        momentum = "beta1" if "betas" in opt.param_groups[0] else "momentum"
    closure_based = case.optimizer.startswith("LBFGS")
    rows = batches(problem, case.batch_size, case.seed, device)
    history: History = {"loss": [], "lr": [], "grad_norm": [], "update_norm": [],
                        "param_norm": [], **({momentum: []} if momentum else {})}

    def gradient_norm() -> torch.Tensor:
        return get_total_norm([p.grad for p in tensors if p.grad is not None])

    for _ in range(case.steps):
        batch = next(rows)
        group = opt.param_groups[0]
        history["lr"].append(group["lr"])
        if momentum == "momentum":
            history["momentum"].append(group["momentum"])
        elif momentum == "beta1":
            history["beta1"].append(group["betas"][0])
        before = [p.detach().clone() for p in tensors]
        if closure_based:
            first_norm: list[torch.Tensor] = []

            def closure(batch: Any = batch, first_norm: list[torch.Tensor] = first_norm
                        ) -> torch.Tensor:
                opt.zero_grad()
                loss = problem.objective(params, batch)
                loss.backward()
                norm = gradient_norm()
                if not first_norm:  # the gradient at the parameters the step starts from
                    first_norm.append(norm)
                return loss

            loss_value = float(opt.step(closure).detach())  # type: ignore[arg-type, attr-defined]
            grad_norm = first_norm[0]
        else:
            opt.zero_grad()
            loss = problem.objective(params, batch)
            loss_value = loss.item()
            if not math.isfinite(loss_value):  # stop before backward: nothing else recorded
                history["loss"].append(loss_value)
                break
            loss.backward()
            grad_norm = gradient_norm()
            opt.step()
        history["loss"].append(loss_value)
        history["grad_norm"].append(grad_norm.item())
        history["update_norm"].append(
            get_total_norm([p.detach() - b for p, b in zip(tensors, before, strict=True)]).item())
        history["param_norm"].append(get_total_norm([p.detach() for p in tensors]).item())
        for name, tensor in params.items():
            values = tensor.detach().reshape(-1).tolist()
            keys = [f"param.{name}"] if len(values) == 1 else [
                f"param.{name}.{k}" for k in range(len(values))]
            for key, value in zip(keys, values, strict=True):
                history.setdefault(key, []).append(value)
        if not math.isfinite(loss_value):  # a closure step's checks come after the step
            break
        if isinstance(scheduler, sched.ReduceLROnPlateau):
            scheduler.step(loss_value)
        elif scheduler is not None:
            scheduler.step()
    return history


def case_spec(case: Case) -> dict[str, Any]:
    optimizer, _, _ = OPTIMIZERS[case.optimizer]
    schedule, _ = SCHEDULES[case.schedule](case.lr, case.steps)
    raw: dict[str, Any] = {
        **PROBLEMS[case.problem].spec,
        "optimizer": {**optimizer, "lr": case.lr},
        "steps": case.steps,
        "seed": case.seed,
        "device": case.device,
    }
    if schedule is not None:
        raw["schedule"] = schedule
    if case.batch_size is not None:
        raw["batch_size"] = case.batch_size
    return raw








@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_engine_matches_plain_pytorch_loop(case: Case,
                                           record_property: Callable[[str, object], None]
                                           ) -> None:
    reference = reference_history(case)
    # A case is only meaningful when the reference itself trains for all its steps.
    assert len(reference["loss"]) == case.steps
    assert all(math.isfinite(v) for v in reference["loss"]), "pick a smaller lr for this case"
    if case.schedule != "none":  # and a schedule case only when the schedule does something
        assert len(set(reference["lr"])) > 1, "the schedule never changes the lr"
    if case.schedule in CYCLES_MOMENTUM:  # ...to the momentum too, where it cycles it
        cycled = reference.get("momentum") or reference["beta1"]
        assert len(set(cycled)) > 1, "the schedule never changes the momentum"

    engine, summary = engine_history(case_spec(case))
    worst = assert_same_history(engine, reference)
    record_property("max_relative_deviation", worst)
    assert summary.outcome == "completed"
    assert summary.steps_done == case.steps
    for got, expected in [(summary.initial_loss, reference["loss"][0]),
                          (summary.final_loss, reference["loss"][-1]),
                          (summary.best_loss, min(reference["loss"]))]:
        assert got is not None
        assert math.isclose(got, expected, rel_tol=REL_TOL, abs_tol=0)
    assert summary.parameter_count == sum(
        t.numel() for t in PROBLEMS[case.problem].parameters().values())


def _param_series(history: History) -> list[str]:
    return sorted(name for name in history if name.startswith("param."))


def test_cases_cover_the_required_grid() -> None:
    assert {c.schedule for c in CASES} == set(SCHEDULES)
    assert {c.optimizer for c in CASES} == set(OPTIMIZERS)
    assert any(c.problem == "linreg" and c.batch_size == 7 for c in CASES)
    assert len({c.id for c in CASES}) == len(CASES)
    assert 60 <= len(CASES) <= 200


def test_vector_parameters_are_recorded_element_by_element() -> None:
    engine, _ = engine_history(case_spec(Case("vector", "Adam", steps=3)))
    assert _param_series(engine) == [f"param.{n}.{k}" for n in "bw" for k in range(3)]
    assert all(len(values) == 3 for values in engine.values())


def test_parameters_of_larger_models_are_not_recorded() -> None:
    raw = {"model": {"kind": "expression", "expression": "sum((w - 1)**2)",
                     "parameters": {"w": [0.0] * 17}},
           "loss": "none", "optimizer": {"name": "SGD", "lr": 0.1}, "steps": 3, "device": "cpu"}
    engine, summary = engine_history(raw)
    assert sorted(engine) == ["grad_norm", "loss", "lr", "param_norm", "update_norm"]
    assert summary.parameter_count == 17
    # w_k = 1 - 0.8**k: the gradient 2 (w - 1) shrinks by 0.8 a step, each update is lr times
    # it, and the parameters' norm approaches sqrt(17).
    root = math.sqrt(17)
    assert engine["loss"] == [17.0, pytest.approx(17 * 0.8**2), pytest.approx(17 * 0.8**4)]
    assert engine["grad_norm"] == pytest.approx([2 * root * 0.8**k for k in range(3)])
    assert engine["update_norm"] == pytest.approx([0.2 * root * 0.8**k for k in range(3)])
    assert engine["param_norm"] == pytest.approx([root * (1 - 0.8 ** (k + 1)) for k in range(3)])


def test_expression_parameters_keep_the_order_of_the_spec() -> None:
    # The order is the optimizer's (LBFGS's flat vectors, the norms' sums), so it must be
    # the spec's, not sorted by name (which a plain dict in an nn.ParameterDict would do).
    names = ["z", "a", "m", "b"]
    raw = {"model": {"kind": "expression", "expression": "(z - 1)**2 + a**2 + m**2 + b**2",
                     "parameters": dict.fromkeys(names, 0.5)},
           "loss": "none", "optimizer": {"name": "LBFGS"}, "steps": 2, "device": "cpu"}
    problem = build_problem(JobSpec.model_validate(raw))
    assert [name for name, _ in problem.parameters] == names
    assert [name for name, _ in problem.model.named_parameters()] == [
        f"values.{name}" for name in names]


def test_minibatches_follow_the_dataloader_order_not_a_plain_permutation() -> None:
    # With the loss of each mini-batch of w*u + b at w = b = 0 and lr 0, the loss history
    # is a fingerprint of which rows each step used.
    case = Case("linreg", "SGD", batch_size=3, steps=21, seed=7)
    raw = case_spec(case)
    raw["optimizer"]["lr"] = 0.0
    engine, _ = engine_history(raw)
    u, t = torch.tensor(LINREG_U), torch.tensor(LINREG_T)
    loader = DataLoader(TensorDataset(u, t), batch_size=3, shuffle=True,
                        generator=torch.Generator().manual_seed(7))
    expected = [F.mse_loss(torch.zeros(()) * ub, tb).item()
                for _ in range(3) for ub, tb in loader][:21]
    assert engine["loss"] == expected
    # ...which is not the same as slicing one randperm per epoch.
    generator = torch.Generator().manual_seed(7)
    naive = []
    for _ in range(3):
        order = torch.randperm(20, generator=generator)
        naive += [F.mse_loss(torch.zeros(len(rows)), t[rows]).item()
                  for rows in order.split(3)]
    assert engine["loss"] != naive[:21]


# --------------------------------------------------------------------------- determinism


def test_same_spec_twice_gives_identical_histories() -> None:
    raw = case_spec(Case("linreg", "Adam", "OneCycleLR-default-total_steps", batch_size=7))
    first, first_summary = engine_history(raw)
    torch.manual_seed(999)  # global RNG state left by others must not matter
    torch.rand(10)
    second, second_summary = engine_history(raw)
    assert first == second
    assert first_summary.final_loss == second_summary.final_loss


def test_a_different_seed_shuffles_the_minibatches_differently() -> None:
    case = Case("linreg", "SGD", batch_size=4, steps=30)
    first, _ = engine_history(case_spec(case))
    other, _ = engine_history(case_spec(Case("linreg", "SGD", batch_size=4, steps=30, seed=1)))
    assert first["loss"] != other["loss"]
    # Same start, same data: only the order differs.
    assert first["lr"] == other["lr"]


def test_the_seed_does_not_matter_for_full_batches() -> None:
    first, _ = engine_history(case_spec(Case("linreg", "Adam", steps=20)))
    other, _ = engine_history(case_spec(Case("linreg", "Adam", steps=20, seed=99)))
    assert first == other


# --------------------------------------------------------------------------- divergence


@pytest.mark.parametrize("optimizer", ["SGD", "SGD-momentum"])
def test_huge_learning_rate_diverges_without_exception(optimizer: str) -> None:
    raw = {**PROBLEMS["seed"].spec, "optimizer": {**OPTIMIZERS[optimizer][0], "lr": 10.0},
           "steps": 50, "device": "cpu"}
    engine, summary = engine_history(raw)
    losses = engine["loss"]
    assert summary.outcome == "diverged"
    assert not math.isfinite(losses[-1])
    assert all(math.isfinite(v) for v in losses[:-1])
    assert summary.diverged_at == len(losses) - 1
    assert summary.steps_done == len(losses)
    assert summary.final_loss == losses[-1] or math.isnan(losses[-1])
    assert summary.best_loss == min(losses[:-1])
    # The plain loop diverges at the same step, through the same values.
    reference = reference_history(Case("seed", optimizer, steps=50, lr_override=10.0))
    assert reference["loss"][:-1] == losses[:-1]
    assert len(reference["loss"]) == len(losses)
    # Nothing but the lr and the loss is recorded for the step whose loss was not finite:
    # the plain loop stops before backward.
    assert_same_history(engine, reference)
    after_update = [*_param_series(engine), "grad_norm", "update_norm", "param_norm"]
    assert all(len(engine[name]) == len(losses) - 1 for name in after_update)
    assert len(engine["lr"]) == len(losses)


def test_a_finite_run_is_not_marked_diverged() -> None:
    _, summary = engine_history(case_spec(Case("seed", "SGD", steps=20)))
    assert summary.outcome == "completed"
    assert summary.diverged_at is None


# --------------------------------------------------------------------------- GPU

CUDA_CASES = [
    Case("rosenbrock", "Adam", "CosineAnnealingLR", steps=150, device="cuda"),
    Case("rosenbrock", "SGD-nesterov", "OneCycleLR-default-total_steps", steps=150,
         device="cuda"),
    Case("linreg", "AdamW", "SequentialLR", batch_size=7, device="cuda"),
    Case("vector", "RMSprop", "StepLR", batch_size=4, steps=40, device="cuda"),
    Case("linreg", "LBFGS", "none", batch_size=4, steps=15, device="cuda"),
]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("case", CUDA_CASES, ids=[case.id for case in CUDA_CASES])
def test_engine_matches_plain_pytorch_loop_on_cuda(case: Case) -> None:
    reference = reference_history(case)
    engine, summary = engine_history(case_spec(case))
    assert summary.device.startswith("cuda")
    assert_same_history(engine, reference)


# --------------------------------------------------------------------------- hygiene


@pytest.mark.parametrize("optimizer", ["SGD", "LBFGS"])
def test_a_normal_run_emits_no_warnings(optimizer: str) -> None:
    # A worker's log should not fill with torch warnings for ordinary jobs (LBFGS's
    # returned loss still requires grad: converting it must go through detach()).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        engine_history(case_spec(Case("linreg", optimizer, "StepLR", batch_size=4, steps=5)))
