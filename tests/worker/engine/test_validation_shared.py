"""``SpecValidator``: a sweep's points share their problem, and are refused exactly as
``validate_spec`` refuses each of them alone."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from optimlab.worker.engine import SpecError, validate_spec
from optimlab.worker.engine import problem as problem_module
from optimlab.worker.engine import validation as validation_module
from optimlab.worker.engine.data import Dataset
from optimlab.worker.engine.problem import Problem
from optimlab.worker.engine.shared_problems import (
    PreparedProblem,
    ProblemCache,
    RecentDatasetSource,
    problem_key,
)
from optimlab.worker.engine.training import Training
from optimlab.worker.engine.validation import SpecValidator
from optimlab.worker.spec import JobSpec
from tests.seed_table import SEED_SPEC

SEED: dict[str, Any] = {**SEED_SPEC, "device": "cpu"}
# Five rows; ``b`` has four values, so the output fits four rows only (a split of 0.2 or
# batches of 4 without a remainder), and is refused on five rows or on batches of 2.
FOUR_ROWS: dict[str, Any] = {
    "model": {"kind": "expression", "expression": "w*u + b",
              "parameters": {"w": 0.0, "b": [0.0] * 4}},
    "data": {"kind": "inline", "inputs": {"u": [0.0, 1.0, 2.0, 3.0, 4.0]},
             "targets": [1.0, 3.0, 5.0, 7.0, 9.0]},
    "loss": "mse", "optimizer": {"name": "SGD", "lr": 0.01}, "steps": 10, "device": "cpu"}
# A network with dropout: its one step draws from the global random stream.
IRIS_MLP: dict[str, Any] = {
    "model": {"kind": "mlp", "hidden": [8], "dropout": 0.5},
    "data": {"kind": "sklearn", "name": "iris", "val_fraction": 0.2, "standardize": True},
    "optimizer": {"name": "SGD", "lr": 0.1}, "batch_size": 16, "steps": 10, "device": "cpu"}


def spec(base: dict[str, Any] = SEED, **changes: Any) -> JobSpec:
    raw = copy.deepcopy(base)
    raw.update(changes)
    return JobSpec.model_validate(raw)


def alone(job: JobSpec) -> SpecError | None:
    try:
        validate_spec(job)
    except SpecError as exc:
        return exc
    return None


def shared(validator: SpecValidator, job: JobSpec) -> SpecError | None:
    try:
        validator.validate(job)
    except SpecError as exc:
        return exc
    return None


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[JobSpec]:
    """The specs the validators build a problem for."""
    built: list[JobSpec] = []
    build = problem_module.build_problem

    def counted(job: JobSpec, **kwargs: Any) -> Problem:
        built.append(job)
        return build(job, **kwargs)

    monkeypatch.setattr(validation_module, "build_problem", counted)
    return built


@pytest.mark.parametrize("changes", [
    {"optimizer": {"name": "SGD", "lr": -1}},
    {"optimizer": {"name": "SGD", "lr": 0.01, "nesterov": True}},
    {"optimizer": {"name": "SGD", "momentun": 0.9}},
    {"optimizer": {"name": "LBFGS", "line_search_fn": "wolfe"}},  # refused by its first step
    {"optimizer": {"name": "SparseAdam"}},
    {"schedule": {"name": "StepLR", "step_size": 0}},  # refused while stepping
    {"schedule": {"name": "LambdaLR", "lr_lambda": "1/(step - 3)"}},
    {"schedule": {"name": "OneCycleLR", "max_lr": 0.1, "total_steps": 19}},
    {"schedule": {"name": "ReduceLROnPlateau", "monitor": "val_loss"}},
    {"parameter_groups": [{"match": "y", "options": {"lr": 0.1}}]},
    {"parameter_groups": [{"match": "x", "options": {"lr": -0.1}}]},
    {"stop": {"patience": 3}},
])
def test_a_point_of_a_shared_problem_is_refused_as_alone(changes: dict[str, Any],
                                                        builds: list[JobSpec]) -> None:
    validator = SpecValidator()
    for lr in (0.001, 0.01, 0.1):  # the problem built and checked, then reused
        validator.validate(spec(optimizer={"name": "SGD", "lr": lr}))
    bad = spec(**changes)
    expected = alone(bad)
    assert expected is not None, "the case must be refused"
    error = shared(validator, bad)
    assert error is not None
    assert (error.loc, error.message) == (expected.loc, expected.message)
    assert len(validator.problems) == 1
    assert builds.count(bad) == 1, "validate_spec alone builds its own"


def test_points_that_differ_in_options_share_one_problem_per_seed(
        builds: list[JobSpec]) -> None:
    validator = SpecValidator()
    for seed in (0, 1):
        for lr in (0.001, 0.01, 0.1):
            for momentum in (0.0, 0.9):
                validator.validate(spec(IRIS_MLP, seed=seed, name=f"{lr} {momentum}",
                                        optimizer={"name": "SGD", "lr": lr,
                                                   "momentum": momentum},
                                        schedule={"name": "StepLR", "step_size": 5}))
    assert [job.seed for job in builds] == [0, 1]


def test_a_batch_size_that_breaks_the_model_is_refused_after_one_that_fits(
        builds: list[JobSpec]) -> None:
    validator = SpecValidator()
    validator.validate(spec(FOUR_ROWS, data={**FOUR_ROWS["data"], "val_fraction": 0.2}))
    validator.validate(spec(FOUR_ROWS, data={**FOUR_ROWS["data"], "val_fraction": 0.2},
                            batch_size=4))
    error = shared(validator, spec(FOUR_ROWS, data={**FOUR_ROWS["data"], "val_fraction": 0.2},
                                   batch_size=2))
    assert error is not None
    assert error.loc == ("model", "expression")
    assert len(builds) == 3


def test_a_data_field_that_breaks_the_model_is_refused_after_one_that_fits() -> None:
    validator = SpecValidator()
    validator.validate(spec(FOUR_ROWS, data={**FOUR_ROWS["data"], "val_fraction": 0.2}))
    bad = spec(FOUR_ROWS)  # no split: five rows
    error, expected = shared(validator, bad), alone(bad)
    assert error is not None
    assert expected is not None
    assert error.loc == ("model", "expression")
    assert (error.loc, error.message) == (expected.loc, expected.message)


def test_the_length_is_checked_for_each_point_of_a_shared_problem(
        builds: list[JobSpec]) -> None:
    validator = SpecValidator()
    validator.validate(spec(IRIS_MLP, batch_size=1))
    bad = spec(IRIS_MLP, batch_size=1, steps=None, epochs=100_000_000)  # 120 steps an epoch
    error, expected = shared(validator, bad), alone(bad)
    assert error is not None
    assert expected is not None
    assert error.loc == ("epochs",)
    assert (error.loc, error.message) == (expected.loc, expected.message)
    assert builds.count(bad) == 1, "validate_spec alone builds its own"


def test_each_point_steps_from_the_state_it_would_have_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Parameters, their gradients and the random state at each point's step are those it
    has alone (the gradients of the output checks included, though the step clears them)."""
    seen: list[list[torch.Tensor | None]] = []
    check_step = validation_module._check_step

    def spy(job: JobSpec, training: Training, problem: Problem) -> None:
        state: list[torch.Tensor | None] = [torch.get_rng_state()]
        for p in training.params:
            state += [p.detach().clone(), None if p.grad is None else p.grad.clone()]
        seen.append(state)
        check_step(job, training, problem)

    monkeypatch.setattr(validation_module, "_check_step", spy)
    points = [spec(IRIS_MLP, optimizer={"name": "SGD", "lr": lr, "momentum": 0.9})
              for lr in (10.0, 0.5, 0.01)]  # large steps: the weights move a lot
    for job in points:
        validate_spec(job)
    expected, seen[:] = list(seen), []
    validator = SpecValidator()
    for job in points:
        validator.validate(job)
    assert len(seen) == len(expected) == 3
    assert len(expected[0]) == 1 + 2 * 4  # two layers: two weights, two biases
    for state, want in zip(seen, expected, strict=True):
        for got, value in zip(state, want, strict=True):
            assert (got is None) == (value is None)
            assert got is None or value is None or torch.equal(got, value)


def test_without_room_to_keep_problems_every_point_builds_its_own(
        builds: list[JobSpec]) -> None:
    validator = SpecValidator(max_shared_bytes=0)
    for lr in (0.001, 0.01):
        validator.validate(spec(optimizer={"name": "SGD", "lr": lr}))
    assert len(builds) == 2
    assert len(validator.problems) == 0


def test_the_key_leaves_out_only_what_each_point_checks_again() -> None:
    base = spec(IRIS_MLP)
    same = [spec(IRIS_MLP, name="x", tags=["a"], optimizer={"name": "Adam", "lr": 1.0},
                 schedule={"name": "StepLR", "step_size": 1}, steps=None, epochs=3,
                 eval_every=2, clip_grad_norm=1.0, stop={"loss_below": 0.1},
                 diverge_factor=10.0, summary={"tolerance": 0.5}, drop_last=True,
                 device="cuda", parameter_groups=[{"match": "bias", "options": {"lr": 1}}])]
    different = [spec(IRIS_MLP, seed=1), spec(IRIS_MLP, batch_size=8),
                 spec(IRIS_MLP, batch_size=None), spec(IRIS_MLP, loss="cross_entropy"),
                 spec(IRIS_MLP, model={"kind": "mlp", "hidden": [9], "dropout": 0.5}),
                 spec(IRIS_MLP, data={**IRIS_MLP["data"], "val_fraction": 0.3}),
                 spec(IRIS_MLP, data={**IRIS_MLP["data"], "standardize": False})]
    assert all(problem_key(job) == problem_key(base) for job in same)
    assert len({problem_key(job) for job in [base, *different]}) == 1 + len(different)


def _prepared(size: int) -> PreparedProblem:
    problem = problem_module.build_problem(spec(FOUR_ROWS, data={
        **FOUR_ROWS["data"], "inputs": {"u": [float(i) for i in range(size)]},
        "targets": [0.0] * size}, model={**FOUR_ROWS["model"], "parameters": {
            "w": 0.0, "b": 0.0}}))
    return PreparedProblem.capture(problem)


def test_the_cache_drops_the_least_recently_used_beyond_its_budget() -> None:
    a, b, c = _prepared(100), _prepared(100), _prepared(100)
    cache = ProblemCache(max_bytes=a.nbytes * 2)
    cache.put(b"a", a)
    cache.put(b"b", b)
    assert cache.get(b"a") is a  # now the most recent
    cache.put(b"c", c)
    assert cache.get(b"a") is a
    assert cache.get(b"b") is None
    assert cache.get(b"c") is c
    cache.put(b"big", _prepared(1000))  # over the budget alone: not kept, nothing dropped
    assert cache.get(b"big") is None
    assert len(cache) == 2


def test_an_uploaded_data_set_is_read_once_for_many_points() -> None:
    reads: list[str] = []

    class Source:
        def load(self, dataset_id: str) -> Dataset:
            reads.append(dataset_id)
            return Dataset(columns={"u": torch.arange(4.0)}, targets=torch.arange(4.0))

    source = RecentDatasetSource(Source())
    first = source.load("a" * 64)
    assert source.load("a" * 64) is first
    source.load("b" * 64)
    source.load("a" * 64)
    assert reads == ["a" * 64, "b" * 64, "a" * 64]
