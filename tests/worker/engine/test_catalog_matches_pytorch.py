"""The whole catalog, and every built-in model, against a plain hand-written PyTorch script.

Every optimizer class ``torch.optim`` exports (with its defaults, and with one keyword
changed), every scheduler class of ``torch.optim.lr_scheduler`` (nested ones and
momentum-cycling ones included), and the built-in models (linear, logistic, mlp, cnn)
with evaluation, clipping, parameter groups and epochs: each case runs through
``run_training`` and through the script below, full batch and on seeded mini-batches.

The script takes its data from the engine's data functions (``load_dataset`` and
``prepare_split``, tested on their own elsewhere) and writes everything else itself: the
``nn.Sequential``, ``torch.optim.X(model.parameters(), ...)``, the scheduler, the loss
module, ``DataLoader(TensorDataset(...), shuffle=True)`` and the loop, recording what the
engine promises to record. Every series must agree to a relative 1e-6 (bit-equal in
practice).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import clip_grad_norm_, get_total_norm
from torch.optim import Optimizer
from torch.optim import lr_scheduler as sched
from torch.utils.data import DataLoader, TensorDataset

from optimlab.worker.engine import (
    SpecError,
    validate_spec,
)
from optimlab.worker.engine.data import load_dataset, prepare_split
from optimlab.worker.engine.registry import (
    keyword_parameters,
    optimizer_classes,
    scheduler_classes,
)
from optimlab.worker.spec import JobSpec
from tests.worker.engine.histories import (
    History,
    assert_same_history,
    engine_history,
)

optim = torch.optim
Tensor = torch.Tensor

# --------------------------------------------------------------------------- the script


def labels(y: Tensor) -> Tensor:
    """Targets of nn.CrossEntropyLoss: class indices."""
    return y.long()


def columns(y: Tensor) -> Tensor:
    """Targets of a network's regression or BCE output: float [N, T] ([N, 1] for one)."""
    return y.float().reshape(len(y), -1)


def as_given(y: Tensor) -> Tensor:
    """Targets of a formula: float, shaped as the data has them."""
    return y.float()


LOSSES: dict[str, Callable[[], nn.Module]] = {
    "mse": nn.MSELoss, "l1": nn.L1Loss, "huber": nn.HuberLoss,
    "cross_entropy": nn.CrossEntropyLoss, "bce_with_logits": nn.BCEWithLogitsLoss,
}


@dataclass(frozen=True)
class Script:
    """What a hand-written script builds for one job."""

    model: Callable[[], nn.Module]  # built right after torch.manual_seed(seed)
    optimizer: Callable[[nn.Module], Optimizer]
    loss: str = "mse"
    targets: Callable[[Tensor], Tensor] = columns
    scheduler: Callable[[Optimizer, int], Any] | None = None  # (optimizer, total steps)
    momentum: str | None = None  # "momentum" or "beta1": what the schedule cycles
    monitor: str = "loss"  # ReduceLROnPlateau: the step's loss, or val_loss


@dataclass(frozen=True)
class Case:
    id: str
    spec: dict[str, Any]
    script: Script
    tags: frozenset[str] = field(default_factory=frozenset)

    def with_batches(self, batch_size: int | None) -> Case:
        spec = {**self.spec}
        name = "full"
        if batch_size is not None:
            spec["batch_size"] = batch_size
            name = f"batch{batch_size}"
        return Case(f"{self.id}-{name}", spec, self.script, self.tags)


def split(raw: dict[str, Any]) -> tuple[Any, Any]:
    job = JobSpec.model_validate(raw)
    data = load_dataset(job.data, seed=job.seed, source=None)
    parts = prepare_split(data, job.data, seed=job.seed)
    return parts.train, parts.val


def reference_history(raw: dict[str, Any], script: Script) -> History:
    """The plain loop, step by step as the engine's contract spells it."""
    seed = raw.get("seed", 0)
    train, val = split(raw)
    x, y = train.features(), script.targets(train.targets)
    parts = [("train", x, y)]
    if val is not None:
        parts.append(("val", val.features(), script.targets(val.targets)))
    loss_fn = LOSSES[script.loss]()
    classification = script.loss in ("cross_entropy", "bce_with_logits")

    torch.manual_seed(seed)
    model = script.model()
    params = list(model.parameters())
    opt = script.optimizer(model)
    batch_size = raw.get("batch_size")
    loader = None if batch_size is None else DataLoader(
        TensorDataset(x, y), batch_size=batch_size, shuffle=True,
        drop_last=raw.get("drop_last", False), generator=torch.Generator().manual_seed(seed))
    steps = raw["steps"] if raw.get("steps") is not None else raw["epochs"] * (
        1 if loader is None else len(loader))
    scheduler = None if script.scheduler is None else script.scheduler(opt, steps)
    closure_based = isinstance(opt, optim.LBFGS)
    clip = raw.get("clip_grad_norm")
    every = raw.get("eval_every")
    record_params = sum(p.numel() for p in params) <= 16

    def rows() -> Iterator[tuple[Tensor, Tensor]]:
        while True:
            if loader is None:
                yield x, y
            else:
                yield from loader

    def gradient_norm() -> Tensor:
        if clip is not None:
            return clip_grad_norm_(params, clip)
        return get_total_norm([p.grad for p in params if p.grad is not None])

    def correct(output: Tensor, target: Tensor) -> int:
        predicted = output.argmax(dim=1) if script.loss == "cross_entropy" else (
            (output > 0).float())
        return int((predicted == target).sum().item())

    history: History = {}

    def add(name: str, value: float) -> None:
        history.setdefault(name, []).append(value)

    batches = rows()
    for i in range(steps):
        xb, yb = next(batches)
        group = opt.param_groups[0]
        add("lr", group["lr"])
        if script.momentum == "momentum":
            add("momentum", group["momentum"])
        elif script.momentum == "beta1":
            add("beta1", group["betas"][0])
        before = [p.detach().clone() for p in params]
        if closure_based:
            norms: list[Tensor] = []

            def closure(xb: Tensor = xb, yb: Tensor = yb, norms: list[Tensor] = norms
                        ) -> Tensor:
                opt.zero_grad()
                loss: Tensor = loss_fn(model(xb), yb)
                loss.backward()
                norm = gradient_norm()
                if not norms:
                    norms.append(norm)
                return loss

            loss_value = float(opt.step(closure).detach())  # type: ignore[arg-type, attr-defined]
            grad_norm = norms[0]
        else:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss_value = loss.item()
            loss.backward()
            grad_norm = gradient_norm()
            opt.step()
        add("loss", loss_value)
        add("grad_norm", grad_norm.item())
        add("update_norm", get_total_norm(
            [p.detach() - b for p, b in zip(params, before, strict=True)]).item())
        add("param_norm", get_total_norm([p.detach() for p in params]).item())
        if record_params:
            for name, p in model.named_parameters():
                values = p.detach().reshape(-1).tolist()
                if len(values) == 1:
                    add(f"param.{name}", values[0])
                else:
                    for k, value in enumerate(values):
                        add(f"param.{name}.{k}", value)
        val_loss = None
        if every is not None and ((i + 1) % every == 0 or i == steps - 1):
            model.eval()
            with torch.no_grad():
                for prefix, xs, ys in parts:
                    output = model(xs)
                    value = loss_fn(output, ys).item()
                    add("train_loss_full" if prefix == "train" else "val_loss", value)
                    if prefix == "val":
                        val_loss = value
                    if classification:
                        add(f"{prefix}_accuracy", correct(output, ys) / len(ys))
            model.train()
        if isinstance(scheduler, sched.ReduceLROnPlateau):
            if script.monitor == "loss":
                scheduler.step(loss_value)
            elif val_loss is not None:
                scheduler.step(val_loss)
        elif scheduler is not None:
            scheduler.step()
    return history








def check_case(case: Case, record_property: Callable[[str, object], None]) -> History:
    reference = reference_history(case.spec, case.script)
    losses = reference["loss"]
    assert all(math.isfinite(v) for v in losses), "the script diverges: pick another lr"
    assert losses[-1] != losses[0], "the script does not train: the case checks nothing"
    engine, summary = engine_history(case.spec)
    record_property("max_relative_deviation", assert_same_history(engine, reference))
    assert summary.outcome == "completed"
    assert summary.steps == summary.steps_done == len(losses)
    assert summary.loss == case.script.loss
    assert summary.final_loss == losses[-1]
    if "val_loss" in reference:
        assert summary.best_val_loss == min(reference["val_loss"])
    if "train_loss_full" in reference:
        assert summary.evaluation is not None
        assert summary.evaluation["train_loss_full"] == reference["train_loss_full"][-1]
    return reference


# --------------------------------------------------------------------------- small problems

REGRESSION: dict[str, Any] = {"kind": "synthetic", "generator": "linear", "samples": 24,
                              "features": 3}
# Noisy enough that val_loss and the training loss disagree on when a plateau starts.
NOISY_SPLIT_REGRESSION: dict[str, Any] = {**REGRESSION, "noise": 1.0, "val_fraction": 0.25}
BLOBS: dict[str, Any] = {"kind": "synthetic", "generator": "blobs", "samples": 60,
                         "features": 4, "classes": 3, "val_fraction": 0.25, "standardize": True}


def linear_job(optimizer: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {"model": {"kind": "linear"}, "data": REGRESSION, "optimizer": optimizer,
            "steps": 20, "seed": 1, "device": "cpu", **changes}


def json_value(value: Any) -> Any:
    """A Python keyword as JSON has it: tuples are lists."""
    return [json_value(v) for v in value] if isinstance(value, tuple) else value


# --------------------------------------------------------------------------- every optimizer
# One keyword per class that differs from its default (and changes the trajectory).

OPTIMIZER_KEYWORDS: dict[str, dict[str, Any]] = {
    "Adadelta": {"rho": 0.5},
    "Adafactor": {"eps": (None, 0.01)},
    "Adagrad": {"lr_decay": 0.05},
    "Adam": {"amsgrad": True},
    "Adamax": {"betas": (0.8, 0.95)},
    "AdamW": {"weight_decay": 0.5},
    "ASGD": {"lambd": 0.05},
    "LBFGS": {"line_search_fn": "strong_wolfe"},
    "Muon": {"adjust_lr_fn": "match_rms_adamw"},
    "NAdam": {"momentum_decay": 0.05},
    "RAdam": {"weight_decay": 0.1},
    "RMSprop": {"centered": True},
    "Rprop": {"etas": (0.3, 1.5)},
    "SGD": {"momentum": 0.9},
    "SparseAdam": {"betas": (0.8, 0.9)},
}
# Classes that cannot train these dense models: refused at submit time, naming them.
REFUSED = {"SparseAdam": "dense gradients", "Muon": "2D parameters"}


def optimizer_cases() -> list[Case]:
    cases = []
    for name, keywords in OPTIMIZER_KEYWORDS.items():
        if name == "SparseAdam":
            continue
        for variant, kwargs in (("defaults", {}), ("keyword", keywords)):
            # Muon orthogonalises 2-D weights only: a linear model without bias.
            bias = name != "Muon"
            script = Script(
                model=lambda bias=bias: nn.Linear(3, 1, bias=bias),  # type: ignore[misc]
                optimizer=lambda m, name=name, kwargs=kwargs: getattr(optim, name)(  # type: ignore[misc]
                    m.parameters(), **kwargs))
            job = linear_job({"name": name, **{k: json_value(v) for k, v in kwargs.items()}},
                             model={"kind": "linear", "bias": bias},
                             steps=8 if name == "LBFGS" else 20)
            case = Case(f"{name}-{variant}", job, script)
            cases += [case.with_batches(None), case.with_batches(7)]
    return cases


OPTIMIZER_CASES = optimizer_cases()


def test_the_optimizer_table_covers_every_class_with_a_non_default_keyword() -> None:
    classes = optimizer_classes()
    assert set(OPTIMIZER_KEYWORDS) == set(classes), "a new optimizer: add it to the table"
    for name, keywords in OPTIMIZER_KEYWORDS.items():
        accepted = keyword_parameters(classes[name])
        for key, value in keywords.items():
            assert key != "lr"
            assert value != accepted[key].default, f"{name}.{key} is its default"
        # "defaults" really means no keyword at all: none of them is required.
        assert all(p.default is not inspect.Parameter.empty for p in accepted.values())


@pytest.mark.parametrize("case", OPTIMIZER_CASES, ids=[c.id for c in OPTIMIZER_CASES])
def test_every_optimizer_matches_the_plain_loop(
        case: Case, record_property: Callable[[str, object], None]) -> None:
    check_case(case, record_property)


@pytest.mark.parametrize("variant", ["defaults", "keyword"])
@pytest.mark.parametrize("name", sorted(REFUSED))
def test_optimizers_that_cannot_train_dense_models_are_refused(name: str, variant: str) -> None:
    keywords = OPTIMIZER_KEYWORDS[name] if variant == "keyword" else {}
    optimizer = {"name": name, **{k: json_value(v) for k, v in keywords.items()}}
    expression = {"model": {"kind": "expression", "expression": "w*u + b",
                            "parameters": {"w": [[0.5]], "b": 0.0}},
                  "data": {"kind": "inline", "inputs": {"u": [[1.0], [2.0]]},
                           "targets": [[2.0], [4.0]]}}
    for raw in (linear_job(optimizer), {**linear_job(optimizer), **expression}):
        with pytest.raises(SpecError) as caught:
            validate_spec(JobSpec.model_validate(raw))
        assert caught.value.loc[0] == "optimizer"
        assert name in caught.value.message
        assert REFUSED[name] in caught.value.message


# --------------------------------------------------------------------------- every scheduler

SGD_MOMENTUM: tuple[dict[str, Any], Callable[[nn.Module], Optimizer]] = (
    {"name": "SGD", "lr": 0.05, "momentum": 0.9},
    lambda m: optim.SGD(m.parameters(), lr=0.05, momentum=0.9))
ADAM: tuple[dict[str, Any], Callable[[nn.Module], Optimizer]] = (
    {"name": "Adam", "lr": 0.05}, lambda m: optim.Adam(m.parameters(), lr=0.05))
SGD: tuple[dict[str, Any], Callable[[nn.Module], Optimizer]] = (
    {"name": "SGD", "lr": 0.05}, lambda m: optim.SGD(m.parameters(), lr=0.05))


@dataclass(frozen=True)
class Schedule:
    spec: dict[str, Any]
    make: Callable[[Optimizer, int], Any]
    optimizer: tuple[dict[str, Any], Callable[[nn.Module], Optimizer]] = SGD_MOMENTUM
    momentum: str | None = None
    monitor: str = "loss"


SCHEDULES: dict[str, Schedule] = {
    "LambdaLR": Schedule(
        {"name": "LambdaLR", "lr_lambda": "0.95**step"},
        lambda o, n: sched.LambdaLR(o, lr_lambda=lambda step: 0.95**step)),
    "MultiplicativeLR": Schedule(
        {"name": "MultiplicativeLR", "lr_lambda": "1 - 0.2/(epoch + 4)"},
        lambda o, n: sched.MultiplicativeLR(o, lr_lambda=lambda epoch: 1 - 0.2 / (epoch + 4))),
    "StepLR": Schedule({"name": "StepLR", "step_size": 5}, lambda o, n: sched.StepLR(o, 5)),
    "MultiStepLR": Schedule({"name": "MultiStepLR", "milestones": [4, 10]},
                            lambda o, n: sched.MultiStepLR(o, milestones=[4, 10])),
    "ConstantLR": Schedule({"name": "ConstantLR"}, lambda o, n: sched.ConstantLR(o)),
    "LinearLR": Schedule({"name": "LinearLR"}, lambda o, n: sched.LinearLR(o)),
    "ExponentialLR": Schedule({"name": "ExponentialLR", "gamma": 0.9},
                              lambda o, n: sched.ExponentialLR(o, gamma=0.9)),
    "SequentialLR": Schedule(
        {"name": "SequentialLR", "milestones": [4],
         "schedulers": [{"name": "LinearLR", "start_factor": 0.2, "total_iters": 4},
                        {"name": "ExponentialLR", "gamma": 0.9}]},
        lambda o, n: sched.SequentialLR(
            o, [sched.LinearLR(o, start_factor=0.2, total_iters=4),
                sched.ExponentialLR(o, gamma=0.9)], milestones=[4])),
    # momentum cycling inside a SequentialLR: recorded too
    "SequentialLR-CyclicLR": Schedule(
        {"name": "SequentialLR", "milestones": [8],
         "schedulers": [{"name": "CyclicLR", "base_lr": 0.005, "max_lr": 0.05,
                         "step_size_up": 3},
                        {"name": "ExponentialLR", "gamma": 0.9}]},
        lambda o, n: sched.SequentialLR(
            o, [sched.CyclicLR(o, base_lr=0.005, max_lr=0.05, step_size_up=3),
                sched.ExponentialLR(o, gamma=0.9)], milestones=[8]),
        momentum="momentum"),
    "ChainedScheduler": Schedule(
        {"name": "ChainedScheduler",
         "schedulers": [{"name": "ConstantLR", "factor": 0.5, "total_iters": 4},
                        {"name": "ExponentialLR", "gamma": 0.95}]},
        lambda o, n: sched.ChainedScheduler(
            [sched.ConstantLR(o, factor=0.5, total_iters=4), sched.ExponentialLR(o, gamma=0.95)])),
    # two levels: a SequentialLR inside a ChainedScheduler
    "ChainedScheduler-SequentialLR": Schedule(
        {"name": "ChainedScheduler",
         "schedulers": [{"name": "SequentialLR", "milestones": [4],
                         "schedulers": [{"name": "LinearLR", "start_factor": 0.2,
                                         "total_iters": 4},
                                        {"name": "ExponentialLR", "gamma": 0.9}]},
                        {"name": "StepLR", "step_size": 5, "gamma": 0.5}]},
        lambda o, n: sched.ChainedScheduler([
            sched.SequentialLR(o, [sched.LinearLR(o, start_factor=0.2, total_iters=4),
                                   sched.ExponentialLR(o, gamma=0.9)], milestones=[4]),
            sched.StepLR(o, step_size=5, gamma=0.5)])),
    "CosineAnnealingLR": Schedule({"name": "CosineAnnealingLR"},
                                  lambda o, n: sched.CosineAnnealingLR(o, T_max=n)),
    "ReduceLROnPlateau-loss": Schedule(
        {"name": "ReduceLROnPlateau", "patience": 0, "threshold": 0.2},
        lambda o, n: sched.ReduceLROnPlateau(o, patience=0, threshold=0.2)),
    "ReduceLROnPlateau-val_loss": Schedule(
        {"name": "ReduceLROnPlateau", "patience": 0, "monitor": "val_loss"},
        lambda o, n: sched.ReduceLROnPlateau(o, patience=0),
        monitor="val_loss"),
    "CyclicLR-SGD": Schedule(
        {"name": "CyclicLR", "base_lr": 0.005, "max_lr": 0.05, "step_size_up": 4},
        lambda o, n: sched.CyclicLR(o, base_lr=0.005, max_lr=0.05, step_size_up=4),
        momentum="momentum"),
    "CyclicLR-Adam": Schedule(
        {"name": "CyclicLR", "base_lr": 0.005, "max_lr": 0.05, "step_size_up": 4},
        lambda o, n: sched.CyclicLR(o, base_lr=0.005, max_lr=0.05, step_size_up=4),
        optimizer=ADAM, momentum="beta1"),
    "CyclicLR-no-momentum": Schedule(
        {"name": "CyclicLR", "base_lr": 0.005, "max_lr": 0.05, "step_size_up": 4,
         "cycle_momentum": False},
        lambda o, n: sched.CyclicLR(o, base_lr=0.005, max_lr=0.05, step_size_up=4,
                                    cycle_momentum=False),
        optimizer=SGD),
    "CosineAnnealingWarmRestarts": Schedule(
        {"name": "CosineAnnealingWarmRestarts", "T_0": 5},
        lambda o, n: sched.CosineAnnealingWarmRestarts(o, T_0=5)),
    "OneCycleLR-SGD": Schedule({"name": "OneCycleLR", "max_lr": 0.05},
                               lambda o, n: sched.OneCycleLR(o, max_lr=0.05, total_steps=n),
                               momentum="momentum"),
    "OneCycleLR-Adam": Schedule({"name": "OneCycleLR", "max_lr": 0.05},
                                lambda o, n: sched.OneCycleLR(o, max_lr=0.05, total_steps=n),
                                optimizer=ADAM, momentum="beta1"),
    "PolynomialLR": Schedule({"name": "PolynomialLR"}, lambda o, n: sched.PolynomialLR(o)),
}


def schedule_cases() -> list[Case]:
    cases = []
    for key, schedule in SCHEDULES.items():
        optimizer_spec, make_optimizer = schedule.optimizer
        changes: dict[str, Any] = {"schedule": schedule.spec}
        if schedule.monitor == "val_loss":
            changes.update(data=NOISY_SPLIT_REGRESSION, eval_every=3)
        script = Script(model=lambda: nn.Linear(3, 1), optimizer=make_optimizer,
                        scheduler=schedule.make, momentum=schedule.momentum,
                        monitor=schedule.monitor)
        case = Case(key, linear_job(optimizer_spec, **changes), script, frozenset({"schedule"}))
        cases += [case.with_batches(None), case.with_batches(7)]
    return cases


SCHEDULE_CASES = schedule_cases()


def test_the_schedule_table_covers_every_class() -> None:
    assert {s.spec["name"] for s in SCHEDULES.values()} == set(scheduler_classes())


@pytest.mark.parametrize("case", SCHEDULE_CASES, ids=[c.id for c in SCHEDULE_CASES])
def test_every_scheduler_matches_the_plain_loop(
        case: Case, record_property: Callable[[str, object], None]) -> None:
    reference = check_case(case, record_property)
    assert len(set(reference["lr"])) > 1, "the schedule never changes the lr"
    if case.script.momentum is not None:
        assert len(set(reference[case.script.momentum])) > 1


def test_the_plateau_monitors_watch_different_numbers() -> None:
    # The same job watching loss (every step) or val_loss (every evaluation) follows
    # different lrs: the comparison above would notice a mix-up.
    lrs = []
    for monitor in ("loss", "val_loss"):
        raw = linear_job(SGD_MOMENTUM[0], data=NOISY_SPLIT_REGRESSION, eval_every=3,
                         schedule={"name": "ReduceLROnPlateau", "patience": 0,
                                   "monitor": monitor})
        lrs.append(engine_history(raw)[0]["lr"])
    assert lrs[0] != lrs[1]


# --------------------------------------------------------------------------- built-in models

_rng = np.random.default_rng(5)
TWO_TARGETS_U = _rng.uniform(-1, 1, size=(12, 2)).round(3)
TWO_TARGETS_V = _rng.uniform(-1, 1, size=12).round(3)
TWO_TARGETS = np.stack([TWO_TARGETS_U[:, 0] - TWO_TARGETS_V,
                        2 * TWO_TARGETS_U[:, 1] + 0.5], axis=1)


class Line(nn.Module):
    """The formula ``w*x2 + b`` over the data's third column."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(0.0))
        self.b = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: Tensor) -> Tensor:
        return self.w * x[:, 2] + self.b


class Plane(nn.Module):
    """The formula ``a*x0 + c*x1 + b``: parameters in the spec's order (a, c, b)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(0.5))
        self.c = nn.Parameter(torch.tensor(-0.5))
        self.b = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: Tensor) -> Tensor:
        return self.a * x[:, 0] + self.c * x[:, 1] + self.b


def blobs_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Dropout(0.2),
                         nn.Linear(16, 8), nn.Tanh(), nn.Dropout(0.2), nn.Linear(8, 3))


def digits_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 8x8 -> 4x4
        nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 4x4 -> 2x2
        nn.Flatten(), nn.Linear(8 * 2 * 2, 16), nn.ReLU(), nn.Linear(16, 10))


def deep_digits_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 2, 5, padding=2), nn.ELU(), nn.MaxPool2d(2),  # 8 -> 4
        nn.Conv2d(2, 3, 5, padding=2), nn.ELU(), nn.MaxPool2d(2),  # 4 -> 2
        nn.Conv2d(3, 2, 5, padding=2), nn.ELU(), nn.MaxPool2d(2),  # 2 -> 1
        nn.Conv2d(2, 2, 5, padding=2), nn.ELU(),  # 1x1: nothing left to halve
        nn.Flatten(), nn.Linear(2, 8), nn.ELU(), nn.Dropout(0.3), nn.Linear(8, 10))


def grouped_sgd(m: nn.Module) -> Optimizer:
    assert isinstance(m, nn.Sequential)
    first, last = m[0], m[2]
    assert isinstance(first, nn.Linear)
    assert isinstance(last, nn.Linear)
    groups: list[dict[str, Any]] = [
        {"params": [last.weight]},
        {"params": [first.bias, last.bias], "lr": 0.1, "weight_decay": 0.0},
        {"params": [first.weight], "momentum": 0.5}]
    return optim.SGD(groups, lr=0.05, momentum=0.9, weight_decay=1e-3)


def grouped_adam(m: nn.Module) -> Optimizer:
    assert isinstance(m, nn.Linear)
    return optim.Adam([{"params": [m.weight], "lr": 0.02}, {"params": [m.bias], "lr": 0.2}],
                      lr=0.01)


def _model_cases() -> list[Case]:
    job = linear_job
    return [
        # logistic regression on two classes: BCE on one logit by default
        Case("logistic-moons", job(
            {"name": "SGD", "lr": 0.5}, model={"kind": "logistic"}, eval_every=5, steps=25,
            data={"kind": "synthetic", "generator": "moons", "samples": 40, "noise": 0.2}),
            Script(lambda: nn.Linear(2, 1), lambda m: optim.SGD(m.parameters(), lr=0.5),
                   loss="bce_with_logits")),
        # ...and on three: cross-entropy, 15 recorded parameters, a standardised split
        Case("logistic-iris", job(
            {"name": "Adam", "lr": 0.05}, model={"kind": "logistic"}, eval_every=10, steps=30,
            data={"kind": "sklearn", "name": "iris", "val_fraction": 0.2, "standardize": True}),
            Script(lambda: nn.Linear(4, 3), lambda m: optim.Adam(m.parameters(), lr=0.05),
                   loss="cross_entropy", targets=labels)),
        Case("mlp-dropout-blobs", job(
            {"name": "Adam", "lr": 0.01}, eval_every=4, steps=24, data=BLOBS, seed=3,
            model={"kind": "mlp", "hidden": [16, 8], "activation": "tanh", "dropout": 0.2}),
            Script(blobs_mlp, lambda m: optim.Adam(m.parameters(), lr=0.01),
                   loss="cross_entropy", targets=labels)),
        Case("mlp-diabetes-huber", job(
            {"name": "SGD", "lr": 0.05}, loss="huber", eval_every=10, steps=20,
            model={"kind": "mlp", "hidden": [8], "activation": "gelu"},
            data={"kind": "sklearn", "name": "diabetes", "val_fraction": 0.2,
                  "standardize": True}),
            Script(lambda: nn.Sequential(nn.Linear(10, 8), nn.GELU(), nn.Linear(8, 1)),
                   lambda m: optim.SGD(m.parameters(), lr=0.05), loss="huber")),
        Case("cnn-digits", job(
            {"name": "SGD", "lr": 0.05, "momentum": 0.9}, eval_every=2, steps=4,
            model={"kind": "cnn", "channels": [4, 8], "hidden": 16},
            data={"kind": "sklearn", "name": "digits", "val_fraction": 0.1}),
            Script(digits_cnn, lambda m: optim.SGD(m.parameters(), lr=0.05, momentum=0.9),
                   loss="cross_entropy", targets=labels)),
        Case("cnn-digits-deep-dropout", job(
            {"name": "Adam", "lr": 0.01}, steps=3, seed=2,
            model={"kind": "cnn", "channels": [2, 3, 2, 2], "kernel_size": 5, "hidden": 8,
                   "activation": "elu", "dropout": 0.3},
            data={"kind": "sklearn", "name": "digits", "standardize": True}),
            Script(deep_digits_cnn, lambda m: optim.Adam(m.parameters(), lr=0.01),
                   loss="cross_entropy", targets=labels)),
        # inline data: a [N, 2] column and a [N] one feed 3 features; 2 target columns; L1
        Case("linear-two-targets-l1", job(
            {"name": "SGD", "lr": 0.1}, loss="l1",
            data={"kind": "inline", "inputs": {"u": TWO_TARGETS_U.tolist(),
                                               "v": TWO_TARGETS_V.tolist()},
                  "targets": TWO_TARGETS.tolist()}),
            Script(lambda: nn.Linear(3, 2), lambda m: optim.SGD(m.parameters(), lr=0.1),
                   loss="l1")),
        Case("clip-grad-norm", job({"name": "SGD", "lr": 0.1}, clip_grad_norm=0.5),
             Script(lambda: nn.Linear(3, 1), lambda m: optim.SGD(m.parameters(), lr=0.1)),
             frozenset({"clipped"})),
        Case("clip-grad-norm-LBFGS", job({"name": "LBFGS", "max_iter": 4}, clip_grad_norm=1.0,
                                         steps=6),
             Script(lambda: nn.Linear(3, 1), lambda m: optim.LBFGS(m.parameters(), max_iter=4)),
             frozenset({"clipped"})),
        Case("parameter-groups", job(
            {"name": "SGD", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3},
            model={"kind": "mlp", "hidden": [8]}, data=BLOBS, eval_every=5,
            parameter_groups=[{"match": "bias", "options": {"lr": 0.1, "weight_decay": 0.0}},
                              {"match": "0.*", "options": {"momentum": 0.5}}],
            schedule={"name": "StepLR", "step_size": 5}),
            Script(lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)),
                   grouped_sgd, loss="cross_entropy", targets=labels,
                   scheduler=lambda o, n: sched.StepLR(o, step_size=5))),
        # every parameter in a group: the first group's lr is the one recorded
        Case("parameter-groups-all-matched", job(
            {"name": "Adam", "lr": 0.01},
            parameter_groups=[{"match": "weight", "options": {"lr": 0.02}},
                              {"match": "bias", "options": {"lr": 0.2}}]),
            Script(lambda: nn.Linear(3, 1), grouped_adam)),
        Case("epochs-drop-last", job({"name": "SGD", "lr": 0.05}, steps=None, epochs=4,
                                     batch_size=7, drop_last=True),
             Script(lambda: nn.Linear(3, 1), lambda m: optim.SGD(m.parameters(), lr=0.05)),
             frozenset({"batched"})),
        Case("epochs", job({"name": "SGD", "lr": 0.05}, steps=None, epochs=3, batch_size=5),
             Script(lambda: nn.Linear(3, 1), lambda m: optim.SGD(m.parameters(), lr=0.05)),
             frozenset({"batched"})),
        Case("expression-diabetes", job(
            {"name": "SGD", "lr": 0.1},
            model={"kind": "expression", "expression": "w*x2 + b",
                   "parameters": {"w": 0.0, "b": 0.0}},
            data={"kind": "sklearn", "name": "diabetes", "standardize": True}),
            Script(Line, lambda m: optim.SGD(m.parameters(), lr=0.1), targets=as_given)),
        Case("expression-moons-bce", job(
            {"name": "Adam", "lr": 0.1}, loss="bce_with_logits", eval_every=5,
            model={"kind": "expression", "expression": "a*x0 + c*x1 + b",
                   "parameters": {"a": 0.5, "c": -0.5, "b": 0.0}},
            data={"kind": "synthetic", "generator": "moons", "samples": 40,
                  "val_fraction": 0.25}),
            Script(Plane, lambda m: optim.Adam(m.parameters(), lr=0.1),
                   loss="bce_with_logits", targets=as_given)),
    ]


def model_cases() -> list[Case]:
    cases = []
    for case in _model_cases():
        if "batched" in case.tags:
            cases.append(Case(case.id, {k: v for k, v in case.spec.items() if v is not None},
                              case.script, case.tags))
            continue
        batch = 64 if case.id.startswith("cnn") else 8
        cases += [case.with_batches(None), case.with_batches(batch)]
    return cases


MODEL_CASES = model_cases()


@pytest.mark.parametrize("case", MODEL_CASES, ids=[c.id for c in MODEL_CASES])
def test_built_in_models_match_the_plain_loop(
        case: Case, record_property: Callable[[str, object], None]) -> None:
    reference = check_case(case, record_property)
    if "clipped" in case.tags:  # clipping did happen
        assert max(reference["grad_norm"]) > case.spec["clip_grad_norm"]


def test_the_model_cases_cover_every_kind_and_option() -> None:
    specs = [c.spec for c in MODEL_CASES]
    assert {s["model"]["kind"] for s in specs} == {"expression", "linear", "logistic", "mlp",
                                                   "cnn"}
    assert {s["data"]["kind"] for s in specs} >= {"inline", "synthetic", "sklearn"}
    assert {c.script.loss for c in MODEL_CASES} == {"mse", "l1", "huber", "cross_entropy",
                                                    "bce_with_logits"}
    for option in ("clip_grad_norm", "parameter_groups", "epochs", "drop_last", "eval_every"):
        assert any(option in s for s in specs), option
    assert any(s["data"].get("val_fraction") and s["data"].get("standardize") for s in specs)
    assert any(s["model"].get("dropout") for s in specs)


def test_epochs_count_whole_batches() -> None:
    # 24 rows in batches of 7: 3 full batches an epoch with drop_last, 4 without.
    for drop_last, per_epoch in ((True, 3), (False, 4)):
        raw = linear_job({"name": "SGD", "lr": 0.01}, steps=None, epochs=2, batch_size=7,
                         drop_last=drop_last)
        engine, summary = engine_history(raw)
        assert summary.steps == summary.steps_done == len(engine["loss"]) == 2 * per_epoch
        assert summary.epochs_done == 2
