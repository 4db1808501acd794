"""Fused optimizers against J separate torch.optim instances, bit for bit.

Every case runs J = 8 jobs for 300 steps twice: as 8 ``torch.optim.<name>`` instances,
each over its own tensors of shapes [], [3] and [4, 5] (CPU, so the single-tensor
implementation), and as one fused optimizer over the same values stacked into [8],
[8, 3] and [8, 4, 5]. Gradients are an elementwise polynomial of the parameters plus
seeded noise (so they keep changing and exercise every branch); elementwise arithmetic
gives each element the same value whatever the tensor around it, so both sides see the
same gradients for as long as their parameters agree. After every step the stacked
parameters must equal the separate ones exactly (``same``: equal values, NaN where NaN):
every family covered is bit-exact, no tolerance is needed anywhere. Hyperparameters vary
per job (lr always, and one or two others), so both ways of passing them are exercised:
a shared value stays a Python float, differing values become per-job columns; and jobs
whose options take different branches of torch.optim's code are updated group by group.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from torch import Tensor

from optimlab.worker.engine.fused.optim.base import (
    add_quotient,
    add_scaled,
    add_squared,
    added,
)
from optimlab.worker.engine.fused.optimizers import (
    FAMILIES,
    NotFusable,
    fused_optimizer,
)

J = 8
STEPS = 300
SHAPES: list[tuple[int, ...]] = [(), (3,), (4, 5)]
LRS = [0.001, 0.003, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1]

Schedule = Callable[[int], list[float]]  # step -> one value per job


def gradient(p: Tensor, noise: Tensor) -> Tensor:
    """An elementwise gradient: the quartic well (p^2 - 4)^2 / 16 plus noise."""
    return p * (p * p - 4.0) * 0.25 + noise


def same(a: Tensor, b: Tensor) -> bool:
    """Equal, element for element (NaN where the other has NaN)."""
    return torch.allclose(a, b, rtol=0.0, atol=0.0, equal_nan=True)


@dataclass
class Run:
    """The same J jobs as separate torch.optim instances and as one fused optimizer."""

    name: str
    options: list[dict[str, Any]]
    dtype: torch.dtype = torch.float32
    seed: int = 0
    reference: list[list[Tensor]] = field(init=False)  # [job][parameter]
    optimizers: list[torch.optim.Optimizer] = field(init=False)
    stacked: list[Tensor] = field(init=False)

    def __post_init__(self) -> None:
        generator = torch.Generator().manual_seed(self.seed)
        initial = [torch.randn((J, *shape), generator=generator, dtype=self.dtype) * 1.5
                   for shape in SHAPES]
        self.noise = torch.Generator().manual_seed(self.seed + 1)
        self.reference = [[p[j].clone().requires_grad_() for p in initial] for j in range(J)]
        cls = getattr(torch.optim, self.name)
        self.optimizers = [cls(params, **opts)
                           for params, opts in zip(self.reference, self.options, strict=True)]
        self.stacked = [p.clone().requires_grad_() for p in initial]
        self.fused = fused_optimizer(self.name, self.options, self.stacked)
        self.alive = list(range(J))  # the original job of each fused row
        # Jobs that maximize get the gradient of -f: they climb towards the same wells.
        self.sign = [-1.0 if o.get("maximize") else 1.0 for o in self.options]

    def step(self, lr: list[float] | None = None, *, momentum: list[float] | None = None,
             beta1: list[float] | None = None, skip: int | None = None) -> None:
        """One step of both; ``lr``, ``momentum`` and ``beta1`` are per original job."""
        noise = [torch.randn((J, *shape), generator=self.noise, dtype=self.dtype) * 0.5
                 for shape in SHAPES]
        for j in self.alive:
            group = self.optimizers[j].param_groups[0]
            if lr is not None:
                group["lr"] = lr[j]
            if momentum is not None:
                group["momentum"] = momentum[j]
            if beta1 is not None:
                group["betas"] = (beta1[j], group["betas"][1])
            for i, p in enumerate(self.reference[j]):
                p.grad = None if i == skip else gradient(p.detach(), noise[i][j]) * self.sign[j]
            self.optimizers[j].step()
        rows = torch.tensor(self.alive)
        sign = torch.tensor([self.sign[j] for j in self.alive], dtype=self.dtype)
        grads = [None if i == skip
                 else gradient(p.detach(), n[rows]) * sign.view(-1, *[1] * (p.dim() - 1))
                 for i, (p, n) in enumerate(zip(self.stacked, noise, strict=True))]
        if lr is None:
            lr = [float(o.param_groups[0]["lr"]) for o in self.optimizers]
        self.fused.step(grads, [lr[j] for j in self.alive],
                        momentum=None if momentum is None else [momentum[j] for j in self.alive],
                        beta1=None if beta1 is None else [beta1[j] for j in self.alive])

    def keep(self, jobs: list[int]) -> None:
        """Keep these original jobs (a subset of the alive ones, in this order)."""
        rows = torch.tensor([self.alive.index(j) for j in jobs])
        self.stacked = [p.detach()[rows].clone().requires_grad_() for p in self.stacked]
        self.fused.keep(rows, self.stacked)
        self.alive = list(jobs)

    def separate(self, i: int, jobs: list[int] | None = None) -> Tensor:
        return torch.stack([self.reference[j][i].detach()
                            for j in (self.alive if jobs is None else jobs)])

    def assert_equal(self, step: int) -> None:
        for i, p in enumerate(self.stacked):
            expected = self.separate(i)
            if not same(p.detach(), expected):
                diff = (p.detach() - expected).abs().max().item()
                raise AssertionError(f"step {step}, parameter {i} (shape {SHAPES[i]}): "
                                     f"fused differs from torch.optim by up to {diff}")


def run_and_compare(name: str, options: list[dict[str, Any]], steps: int = STEPS, *,
                    lr: Schedule | None = None, momentum: Schedule | None = None,
                    beta1: Schedule | None = None) -> Run:
    run = Run(name, options)
    for step in range(steps):
        run.step(None if lr is None else lr(step),
                 momentum=None if momentum is None else momentum(step),
                 beta1=None if beta1 is None else beta1(step))
        run.assert_equal(step)
    return run


def per_job(base: dict[str, Any], **vary: list[Any]) -> list[dict[str, Any]]:
    """J option dicts: ``base`` with each ``vary`` keyword taking job j's value."""
    return [{**base, **{key: values[j] for key, values in vary.items()}} for j in range(J)]


ALTERNATE = [j % 2 == 0 for j in range(J)]
MOMENTA = [0.0, 0.5, 0.9, 0.99, 0.0, 0.8, 0.95, 0.3]
DECAYS = [0.0, 1e-4, 1e-3, 1e-2, 0.05, 0.1, 0.0, 0.3]
BETAS = [(0.9, 0.999), (0.8, 0.99), (0.5, 0.9), (0.95, 0.9999),
         (0.0, 0.999), (0.9, 0.5), (0.99, 0.999), (0.7, 0.95)]
EPS = [1e-8, 1e-6, 1e-3, 1e-10, 0.1, 1e-8, 1e-4, 1e-7]

# (name, shared options, per-job varied options): lr always varies per job as well.
CASES: list[tuple[str, dict[str, Any], dict[str, list[Any]]]] = [
    ("SGD", {}, {}),
    ("SGD", {"momentum": 0.9}, {}),
    ("SGD", {"momentum": 0.9, "dampening": 0.3}, {"weight_decay": DECAYS}),
    ("SGD", {"momentum": 0.9, "nesterov": True}, {"weight_decay": DECAYS}),
    ("SGD", {"momentum": 0.5, "maximize": True, "weight_decay": 0.01}, {}),
    ("SGD", {}, {"momentum": MOMENTA}),
    ("SGD", {"weight_decay": 0.01}, {"momentum": MOMENTA, "maximize": ALTERNATE}),
    ("SGD", {"momentum": 0.9}, {"dampening": [0.0, 0.1, 0.2, 0.5, 0.9, 1.0, 0.0, 0.3]}),
    ("SGD", {"momentum": 0.9, "dampening": 0.0}, {"nesterov": ALTERNATE}),
    ("Adam", {}, {}),
    ("Adam", {"foreach": False, "fused": False, "capturable": False,
              "differentiable": False}, {}),
    ("Adam", {}, {"betas": BETAS}),
    ("Adam", {"amsgrad": True}, {"eps": EPS}),
    ("Adam", {"weight_decay": 0.01, "maximize": True}, {}),
    ("Adam", {}, {"weight_decay": DECAYS, "amsgrad": ALTERNATE}),
    ("Adam", {"decoupled_weight_decay": True}, {"weight_decay": DECAYS}),
    ("Adam", {"weight_decay": 0.05}, {"decoupled_weight_decay": ALTERNATE}),
    ("AdamW", {}, {}),
    ("AdamW", {}, {"weight_decay": DECAYS}),
    ("AdamW", {"amsgrad": True, "maximize": True}, {"betas": BETAS}),
    ("RMSprop", {}, {}),
    ("RMSprop", {}, {"alpha": [0.99, 0.9, 0.5, 0.999, 0.0, 0.8, 0.95, 0.7]}),
    ("RMSprop", {"centered": True}, {"eps": EPS}),
    ("RMSprop", {"momentum": 0.9}, {"weight_decay": DECAYS}),
    ("RMSprop", {"momentum": 0.5, "centered": True, "maximize": True,
                 "weight_decay": 0.01}, {}),
    ("RMSprop", {"centered": True}, {"momentum": MOMENTA}),
    ("RMSprop", {}, {"centered": ALTERNATE, "maximize": ALTERNATE[::-1]}),
    ("Adagrad", {}, {}),
    ("Adagrad", {}, {"lr_decay": [0.0, 1e-4, 1e-3, 0.01, 0.1, 0.5, 0.0, 1.0]}),
    ("Adagrad", {"weight_decay": 0.01, "maximize": True}, {}),
    ("Adagrad", {"initial_accumulator_value": 0.1}, {"eps": EPS}),
    ("Adagrad", {}, {"initial_accumulator_value": [0.0, 0.1, 1.0, 0.5, 0.0, 2.0, 0.01, 0.3],
                     "weight_decay": DECAYS}),
    ("Adamax", {}, {}),
    ("Adamax", {}, {"betas": BETAS}),
    ("Adamax", {"weight_decay": 0.01, "maximize": True}, {"eps": EPS}),
    ("Adamax", {}, {"weight_decay": DECAYS, "maximize": ALTERNATE}),
    ("NAdam", {}, {}),
    ("NAdam", {}, {"betas": BETAS}),
    ("NAdam", {}, {"momentum_decay": [4e-3, 0.0, 1e-2, 0.1, 1e-3, 4e-3, 0.5, 2e-3]}),
    ("NAdam", {"weight_decay": 0.01, "maximize": True}, {"eps": EPS}),
    ("NAdam", {"decoupled_weight_decay": True}, {"weight_decay": DECAYS}),
    ("NAdam", {"weight_decay": 0.05}, {"decoupled_weight_decay": ALTERNATE}),
    ("RAdam", {}, {}),
    # beta2 decides from which step on a job's update is rectified (rho_t > 5).
    ("RAdam", {}, {"betas": BETAS}),
    ("RAdam", {"weight_decay": 0.01, "maximize": True}, {"eps": EPS}),
    ("RAdam", {"decoupled_weight_decay": True}, {"weight_decay": DECAYS}),
    ("RAdam", {"weight_decay": 0.05}, {"decoupled_weight_decay": ALTERNATE}),
    ("Adadelta", {}, {}),
    ("Adadelta", {}, {"rho": [0.9, 0.5, 0.99, 0.0, 0.95, 0.8, 0.999, 0.7]}),
    ("Adadelta", {"weight_decay": 0.01, "maximize": True}, {"eps": EPS}),
    ("Adadelta", {}, {"weight_decay": DECAYS, "maximize": ALTERNATE}),
    ("ASGD", {}, {}),
    # t0 decides from which step a job averages (mu != 1).
    ("ASGD", {}, {"t0": [0.0, 1.0, 10.0, 50.0, 100.0, 250.0, 1e6, 5.0]}),
    ("ASGD", {"t0": 20.0, "weight_decay": 0.01, "maximize": True},
     {"lambd": [1e-4, 0.0, 1e-2, 0.1, 0.5, 1.0, 1e-3, 2.0]}),
    ("ASGD", {"t0": 0.0}, {"alpha": [0.75, 0.5, 1.0, 0.1, 0.9, 0.0, 2.0, 0.6],
                           "weight_decay": DECAYS}),
]


def case_id(case: tuple[str, dict[str, Any], dict[str, list[Any]]]) -> str:
    name, shared, vary = case
    parts = [f"{k}={v}" for k, v in shared.items()] + [f"{k}=per-job" for k in vary]
    return "-".join([name, *parts]) if parts else f"{name}-defaults"


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_fused_steps_equal_torch_optim(case: tuple[str, dict[str, Any],
                                                   dict[str, list[Any]]]) -> None:
    name, shared, vary = case
    run_and_compare(name, per_job(shared, lr=LRS, **vary))


def test_every_family_has_a_case() -> None:
    assert {name for name, _, _ in CASES} == set(FAMILIES)


def test_the_same_lr_for_every_job_uses_python_scalars() -> None:
    """Shared hyperparameters stay Python floats: literally torch.optim's own calls."""
    cases: list[tuple[str, dict[str, Any]]] = [
        ("Adam", {"lr": 0.01, "betas": (0.8, 0.99)}),
        ("SGD", {"lr": 0.01, "momentum": 0.9, "nesterov": True})]
    for name, options in cases:
        run = run_and_compare(name, per_job(options), steps=50)
        scalars = run.fused.scalars(0, run.fused.steps[0])
        assert all(isinstance(value, float) for value in scalars.values()), scalars


# ----------------------------------------------------------------------- schedules


def varying_lr(step: int) -> list[float]:
    """A different lr for every job and step, as an LR schedule would set it."""
    return [lr * (1.0 + 0.5 * math.cos(0.05 * step + j)) for j, lr in enumerate(LRS)]


def cycling(low: float, high: float) -> Schedule:
    def values(step: int) -> list[float]:
        return [low + (high - low) * (0.5 + 0.5 * math.sin(0.1 * step + j)) for j in range(J)]
    return values


@pytest.mark.parametrize(("name", "options", "key"), [
    ("SGD", {"momentum": 0.9}, "momentum"),
    ("SGD", {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}, "momentum"),
    ("RMSprop", {"momentum": 0.9, "centered": True}, "momentum"),
    ("Adam", {"amsgrad": True}, "beta1"),
    ("AdamW", {}, "beta1"),
    ("Adamax", {}, "beta1"),
    ("NAdam", {"betas": (0.9, 0.99)}, "beta1"),
    ("RAdam", {}, "beta1"),
])
def test_lr_and_momentum_changing_every_step(name: str, options: dict[str, Any],
                                             key: str) -> None:
    cycled = cycling(0.8, 0.95)
    run_and_compare(name, per_job(options, lr=LRS), lr=varying_lr,
                    momentum=cycled if key == "momentum" else None,
                    beta1=cycled if key == "beta1" else None)


def test_momentum_cycled_from_and_to_zero() -> None:
    """SGD's buffer starts (as a copy of the gradient) on a job's first step with momentum."""
    def momentum(step: int) -> list[float]:
        return [0.0 if (step // (j + 2)) % 3 == 0 else 0.5 + 0.05 * j for j in range(J)]
    run_and_compare("SGD", per_job({"momentum": 0.0}, lr=LRS), momentum=momentum)


def test_unchanged_lr_reuses_the_cached_column() -> None:
    run = Run("SGD", per_job({"momentum": 0.9}, lr=LRS))
    run.step()
    column = run.fused.scalars(0, 1)["neg_lr"]
    run.step()
    assert run.fused.scalars(0, 2)["neg_lr"] is column
    run.assert_equal(1)


# ----------------------------------------------------------------------- keep, NaN


@pytest.mark.parametrize(("name", "vary"), [
    ("SGD", {"momentum": MOMENTA}),
    ("Adam", {"amsgrad": ALTERNATE}),
    ("RMSprop", {"centered": ALTERNATE, "momentum": MOMENTA}),
    ("Adagrad", {"lr_decay": [0.0, 0.01] * 4}),
    ("NAdam", {"decoupled_weight_decay": ALTERNATE, "weight_decay": DECAYS}),
    ("RAdam", {"betas": BETAS}),
    ("ASGD", {"t0": [0.0, 150.0, 10.0, 50.0, 100.0, 250.0, 1e6, 5.0]}),
])
def test_kept_jobs_continue_like_their_own_optimizers(name: str,
                                                      vary: dict[str, list[Any]]) -> None:
    run = Run(name, per_job({}, lr=LRS, **vary))
    for step in range(STEPS):
        if step == 100:
            run.keep([0, 2, 3, 5, 6, 7])
        if step == 200:
            run.keep([7, 5, 0])  # reordered too
        run.step(varying_lr(step))
        run.assert_equal(step)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_a_nan_gradient_in_one_job_leaves_the_others_exact(name: str) -> None:
    run = Run(name, per_job({}, lr=LRS))
    poisoned = 3
    others = [j for j in range(J) if j != poisoned]
    for step in range(60):
        run.step()
        if step == 10:
            # A NaN and an inf in job 3's parameters: the next gradients are non-finite.
            with torch.no_grad():
                run.stacked[0][poisoned] = math.nan
                run.stacked[2][poisoned, 0, 0] = math.inf
                run.reference[poisoned][0].fill_(math.nan)
                run.reference[poisoned][2][0, 0] = math.inf
        for i, p in enumerate(run.stacked):
            assert same(p.detach()[others], run.separate(i, others)), (step, i)
    assert run.stacked[0].detach()[poisoned].isnan().all()


@pytest.mark.parametrize("name", ["Adam", "NAdam", "ASGD", "SGD"])
def test_a_parameter_without_gradient_is_left_alone(name: str) -> None:
    """Its state (step count, NAdam's mu_product, ASGD's eta) stays where it was."""
    run = Run(name, per_job({"t0": 5.0} if name == "ASGD" else {}, lr=LRS))
    for step in range(60):
        run.step(varying_lr(step), skip=1 if step % 3 == 0 else None)
        run.assert_equal(step)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_float64_parameters(name: str) -> None:
    run = Run(name, per_job({}, lr=LRS), dtype=torch.float64)
    for step in range(100):
        run.step()
        run.assert_equal(step)


@pytest.mark.parametrize("name", ["Adam", "NAdam", "ASGD", "RAdam"])
def test_float64_default_dtype(name: str) -> None:
    """torch.optim then keeps step counts, NAdam's mu_product, ASGD's eta in float64."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        run = Run(name, per_job({"t0": 10.0} if name == "ASGD" else {}, lr=LRS),
                  dtype=torch.float64)
        for step in range(100):
            run.step(varying_lr(step))
            run.assert_equal(step)
    finally:
        torch.set_default_dtype(previous)


# ----------------------------------------------------------------------- kernel rewrites


def test_each_rewrite_of_a_scalar_call_rounds_like_the_scalar_call() -> None:
    """Per-job columns in place of Python floats: same kernels' rounding, element by element.

    Operands span many magnitudes; rows have 1, 3 or 33 elements so both the vectorised
    loops and their scalar tails are exercised.
    """
    generator = torch.Generator().manual_seed(7)
    scalars = [0.1, -0.9, 1e-3, -3.7, 0.999, 1e-8, 0.5, -0.5, 2.0, 0.3]
    column = torch.tensor(scalars).view(-1, 1)
    rewrites: list[tuple[Callable[[Tensor, Tensor, Tensor, float], Tensor],
                         Callable[[Tensor, Tensor, Tensor, Any], Tensor]]] = [
        (lambda x, y, z, s: x.add_(y, alpha=s), lambda x, y, z, s: add_scaled(x, y, s)),
        (lambda x, y, z, s: x.add(y, alpha=s), lambda x, y, z, s: added(x, y, s)),
        (lambda x, y, z, s: x.addcmul_(y, y, value=s), lambda x, y, z, s: add_squared(x, y, s)),
        (lambda x, y, z, s: x.addcdiv_(y, z, value=s),
         lambda x, y, z, s: add_quotient(x, y, z, s)),
        # lerp's weight (1 - beta) lies in [0, 1]: both of its formulas (weight < 0.5 or not).
        (lambda x, y, z, s: x.lerp_(y, abs(s) % 1),
         lambda x, y, z, s: x.lerp_(y, torch.tensor([abs(v) % 1 for v in scalars]).view(-1, 1))),
        (lambda x, y, z, s: x.mul_(s), lambda x, y, z, s: x.mul_(s)),
        (lambda x, y, z, s: x / s, lambda x, y, z, s: x / s),
        (lambda x, y, z, s: x.add_(s), lambda x, y, z, s: x.add_(s)),
    ]
    for width in (1, 3, 33):
        for _ in range(20):
            x, y, z = (torch.randn((len(scalars), width), generator=generator)
                       * torch.randn((len(scalars), width), generator=generator).mul(4).exp()
                       for _ in range(3))
            for number, (scalar_call, column_call) in enumerate(rewrites):
                expected = torch.stack([scalar_call(x[j].clone(), y[j], z[j], s)
                                        for j, s in enumerate(scalars)])
                assert torch.equal(column_call(x.clone(), y, z, column), expected), number


# ----------------------------------------------------------------------- not fusable


@pytest.mark.parametrize(("name", "options", "reason"), [
    ("LBFGS", {}, "LBFGS needs a closure"),
    ("Rprop", {}, "Rprop"),
    ("NoSuchOptimizer", {}, "NoSuchOptimizer"),
    ("SGD", {"differentiable": True}, "SGD with differentiable=True"),
    ("SGD", {"foreach": True}, "SGD with foreach=True"),
    ("Adam", {"fused": True}, "Adam with fused=True"),
    ("Adam", {"capturable": True}, "Adam with capturable=True"),
    ("Adam", {"lr": torch.tensor(0.01)}, "Adam with a tensor lr"),
    ("AdamW", {"betas": (torch.tensor(0.9), torch.tensor(0.99))}, "AdamW with a tensor betas"),
])
def test_not_fusable(name: str, options: dict[str, Any], reason: str) -> None:
    params = [torch.zeros(J, 3, requires_grad=True)]
    with pytest.raises(NotFusable) as raised:
        fused_optimizer(name, [options] * J, params)
    assert reason in raised.value.reason
    assert str(raised.value) == raised.value.reason


@pytest.mark.parametrize("dtype", [torch.complex64, torch.float16, torch.bfloat16])
def test_not_fusable_dtypes(dtype: torch.dtype) -> None:
    params = [torch.zeros(J, 3, dtype=dtype, requires_grad=True)]
    with pytest.raises(NotFusable, match=str(dtype).removeprefix("torch.")):
        fused_optimizer("SGD", [{}] * J, params)


def test_keep_takes_job_indices() -> None:
    params = [torch.zeros(J, 3, requires_grad=True)]
    optimizer = fused_optimizer("SGD", [{}] * J, params)
    with pytest.raises(ValueError, match="indices"):
        optimizer.keep(torch.ones(J, dtype=torch.bool), params)
    with pytest.raises(ValueError, match="rows"):
        optimizer.keep(torch.tensor([0, 1]), params)


def test_invalid_options_fail_as_torch_optim_fails() -> None:
    params = [torch.zeros(J, 3, requires_grad=True)]
    with pytest.raises(ValueError, match="Nesterov"):
        fused_optimizer("SGD", [{"nesterov": True}] * J, params)
    with pytest.raises(TypeError):
        fused_optimizer("SGD", [{"no_such_option": 1}] * J, params)
    with pytest.raises(ValueError, match="momentum"):
        fused_optimizer("Adagrad", [{}] * J, params).step([torch.zeros(J, 3)], [0.1] * J,
                                                           momentum=[0.9] * J)
