"""Submit-time checks: ``validate_spec`` blames the right field, and accepts what runs."""

from __future__ import annotations

import copy
import inspect
import math
from typing import Any

import pytest
from pydantic import ValidationError

from optimlab.worker.engine import ListSink, SpecError, run_training, validate_spec
from optimlab.worker.engine.registry import (
    keyword_parameters,
    optimizer_classes,
    scheduler_classes,
)
from optimlab.worker.spec import JobSpec
from tests.seed_table import SEED_SPEC

SEED: dict[str, Any] = {**SEED_SPEC, "device": "cpu"}
LINREG: dict[str, Any] = {
    "model": {"kind": "expression", "expression": "w*u + b",
              "parameters": {"w": 0.0, "b": 0.0}},
    "data": {"kind": "inline", "inputs": {"u": [0.0, 1.0, 2.0, 3.0, 4.0]},
             "targets": [1.0, 3.0, 5.0, 7.0, 9.0]},
    "loss": "mse",
    "optimizer": {"name": "SGD", "lr": 0.01, "momentum": 0.9},
    "steps": 30,
    "device": "cpu",
}


def spec(base: dict[str, Any] = SEED, **changes: Any) -> JobSpec:
    raw = copy.deepcopy(base)
    raw.update(changes)
    return JobSpec.model_validate(raw)


def refused(job: JobSpec) -> SpecError:
    with pytest.raises(SpecError) as caught:
        validate_spec(job)
    return caught.value


def expression_model(expression: str, **parameters: Any) -> dict[str, Any]:
    return {"kind": "expression", "expression": expression, "parameters": parameters}


def test_valid_specs_pass() -> None:
    validate_spec(spec())
    validate_spec(spec(LINREG, batch_size=2, schedule={"name": "StepLR", "step_size": 5}))


# --------------------------------------------------------------------------- refused


@pytest.mark.parametrize(
    ("changes", "loc", "words"),
    [
        ({"optimizer": {"name": "Adamm"}}, ("optimizer", "name"), "unknown optimizer"),
        ({"optimizer": {"name": "sgd"}}, ("optimizer", "name"), "SGD"),
        ({"optimizer": {"name": "Optimizer"}}, ("optimizer", "name"), "unknown"),
        ({"optimizer": {"name": "SGD", "momentun": 0.9}}, ("optimizer", "momentun"),
         "no keyword"),
        ({"optimizer": {"name": "SGD", "params": [1.0]}}, ("optimizer", "params"),
         "no keyword"),
        ({"optimizer": {"name": "SGD", "lr": -1}}, ("optimizer",), "learning rate"),
        ({"optimizer": {"name": "Adam", "betas": [0.9, 1.5]}}, ("optimizer",), "beta"),
        ({"optimizer": {"name": "SGD", "lr": 0.01, "nesterov": True}}, ("optimizer",),
         "Nesterov"),
        # accepted by the constructor, refused by the first step: blamed on the optimizer
        ({"optimizer": {"name": "LBFGS", "line_search_fn": "wolfe"}}, ("optimizer", "name"),
         "strong_wolfe"),
        ({"optimizer": {"name": "SparseAdam"}}, ("optimizer", "name"), "dense"),
        ({"schedule": {"name": "StepLR"}}, ("schedule", "step_size"), "requires"),
        ({"schedule": {"name": "ExponentialLR"}}, ("schedule", "gamma"), "requires"),
        ({"schedule": {"name": "StepLRR"}}, ("schedule", "name"), "unknown scheduler"),
        ({"schedule": {"name": "LRScheduler"}}, ("schedule", "name"), "unknown scheduler"),
        ({"schedule": {"name": "StepLR", "step_size": 5, "gama": 0.5}}, ("schedule", "gama"),
         "no keyword"),
        ({"schedule": {"name": "LambdaLR", "lr_lambda": "0.95**z"}},
         ("schedule", "lr_lambda"), "'z'"),
        ({"schedule": {"name": "LambdaLR", "lr_lambda": "step.__class__"}},
         ("schedule", "lr_lambda"), "attribute"),
        ({"schedule": {"name": "LambdaLR", "lr_lambda": "__import__('os')"}},
         ("schedule", "lr_lambda"), "__import__"),
        ({"schedule": {"name": "LambdaLR", "lr_lambda": 0.5}}, ("schedule", "lr_lambda"),
         "expression"),
        ({"schedule": {"name": "LambdaLR", "lr_lambda": "0.95**"}},
         ("schedule", "lr_lambda"), "syntax"),
        ({"schedule": {"name": "OneCycleLR", "max_lr": 0.1, "total_steps": 5}},
         ("schedule",), "step"),
        ({"schedule": {"name": "OneCycleLR"}}, ("schedule", "max_lr"), "requires"),
        ({"schedule": {"name": "SequentialLR", "schedulers": [], "milestones": []}},
         ("schedule", "schedulers"), "non-empty"),
        ({"schedule": {"name": "SequentialLR", "milestones": [3],
                       "schedulers": [{"name": "ConstantLR"}, {"name": "Nope"}]}},
         ("schedule", "schedulers", 1, "name"), "unknown scheduler"),
        ({"schedule": {"name": "SequentialLR", "milestones": [3],
                       "schedulers": [{"name": "ConstantLR"}, {"name": "StepLR"}]}},
         ("schedule", "schedulers", 1, "step_size"), "requires"),
        ({"schedule": {"name": "SequentialLR", "milestones": [3],
                       "schedulers": [{"name": "ConstantLR"}, "StepLR"]}},
         ("schedule", "schedulers", 1), "schedule object"),
        ({"schedule": {"name": "SequentialLR", "milestones": [3],
                       "schedulers": [{"name": "LambdaLR", "lr_lambda": "x.y"},
                                      {"name": "ConstantLR"}]}},
         ("schedule", "schedulers", 0, "lr_lambda"), "attribute"),
        ({"schedule": {"name": "LambdaLR", "lr_lambda": "1/(step - 3)"}}, ("schedule",),
         "LambdaLR"),
    ],
)
def test_refused_with_the_field_to_blame(changes: dict[str, Any], loc: tuple[Any, ...],
                                         words: str) -> None:
    error = refused(spec(**changes))
    assert error.loc == loc
    assert words in error.message
    assert str(error).startswith(".".join(map(str, loc)) + ": ")


@pytest.mark.parametrize(
    ("changes", "loc", "words"),
    [
        # output shape (3,) against targets (2,)
        ({"model": expression_model("w", w=[1.0, 2.0, 3.0]),
          "data": {"kind": "inline", "targets": [1.0, 2.0]}},
         ("model", "expression"), "does not match"),
        # output (5, 5) from a (5, 1) column and (5,) targets: would broadcast silently
        ({"model": expression_model("w*u", w=1.0),
          "data": {"kind": "inline", "inputs": {"u": [[1.0]] * 5},
                   "targets": [1.0] * 5}},
         ("model", "expression"), "does not match"),
        ({"model": expression_model("x**2", x=[1.0, 2.0]), "loss": "none", "data": None},
         ("model", "expression"), "single value"),
        ({"model": expression_model("u*2", x=1.0),
          "data": {"kind": "inline", "inputs": {"u": [1.0, 2.0]}, "targets": [2.0, 4.0]}},
         ("model", "expression"), "does not depend on any parameter"),
        ({"model": expression_model("1 + 2", x=1.0)},
         ("model", "expression"), "does not depend on any parameter"),
        ({"model": expression_model("x + y", x=1.0)}, ("model", "expression"), "'y'"),
        ({"model": expression_model("x.grad", x=1.0)}, ("model", "expression"), "attribute"),
        ({"model": expression_model("x + " + "9" * 2000, x=1.0)}, ("model", "expression"),
         "too large"),
        ({"model": expression_model("w*u", w=[1.0, 2.0]),
          "data": {"kind": "inline", "inputs": {"u": [1.0, 2.0, 3.0]},
                   "targets": [1.0, 2.0, 3.0]}},
         ("model", "expression"), "cannot be evaluated"),
        # ragged arrays
        ({"model": expression_model("sum(x)", x=[[1.0, 2.0], [3.0]]), "loss": "none",
          "data": None},
         ("model", "parameters", "x"), "rectangular"),
        ({"model": expression_model("w*u", w=1.0),
          "data": {"kind": "inline", "inputs": {"u": [[1.0, 2.0], [3.0]]},
                   "targets": [1.0, 2.0]}},
         ("data", "inputs", "u"), "rectangular"),
        ({"data": {"kind": "inline", "targets": [[16.0], [1.0, 2.0]]}},
         ("data", "targets"), "rectangular"),
        ({"model": expression_model("w*u", w=1.0),
          "data": {"kind": "inline", "inputs": {"u": [1.0, 2.0, 3.0]},
                   "targets": [1.0, 2.0]}},
         ("data",), "different numbers of rows"),
        ({"model": expression_model("w*u", w=1.0),
          "data": {"kind": "inline", "inputs": {"u": []}, "targets": []}},
         ("data", "inputs", "u"), "at least one row"),
        ({"model": expression_model("w*u", w=1.0),
          "data": {"kind": "inline", "inputs": {"u": 2.0}, "targets": 4.0}},
         ("data", "inputs", "u"), "at least one row"),
        # an input column named like a parameter
        ({"model": expression_model("w*u", w=1.0),
          "data": {"kind": "inline", "inputs": {"w": [1.0, 2.0], "u": [1.0, 2.0]},
                   "targets": [1.0, 2.0]}},
         ("data", "inputs", "w"), "same name as a parameter"),
    ],
)
def test_model_and_data_problems_are_blamed_on_their_field(
        changes: dict[str, Any], loc: tuple[Any, ...], words: str) -> None:
    error = refused(spec(**changes))
    assert error.loc == loc
    assert words in error.message


def test_partial_last_batch_shape_is_checked_too() -> None:
    # 5 rows in batches of 2: batches of 2 and of 1. A model whose output has the
    # full data set's length (a 5-element parameter) fits neither.
    raw = copy.deepcopy(LINREG)
    raw["model"] = expression_model("w*u + b", w=1.0, b=[0.0] * 5)
    validate_spec(spec(raw))  # full batch: fine
    error = refused(spec(raw, batch_size=2))
    assert error.loc == ("model", "expression")


def test_one_cycle_total_steps_equal_to_steps_is_fine() -> None:
    validate_spec(spec(schedule={"name": "OneCycleLR", "max_lr": 0.1, "total_steps": 20}))
    error = refused(spec(schedule={"name": "OneCycleLR", "max_lr": 0.1, "total_steps": 19}))
    assert error.loc == ("schedule",)
    assert "OneCycleLR" in error.message


def test_one_cycle_with_epochs_does_not_get_total_steps() -> None:
    validate_spec(spec(schedule={"name": "OneCycleLR", "max_lr": 0.1, "epochs": 4,
                                 "steps_per_epoch": 5}))
    error = refused(spec(schedule={"name": "OneCycleLR", "max_lr": 0.1, "epochs": 2,
                                   "steps_per_epoch": 5}))
    assert error.loc == ("schedule",)


def test_validation_does_not_train_the_model() -> None:
    job = spec()
    validate_spec(job)
    assert job.model.parameters["x"] == [1.0]
    sink = ListSink()
    run_training(job, sink)
    assert sink.series("loss")[0] == 225.0


# --------------------------------------------------------------------------- every optimizer

OPTIMIZERS_THAT_CANNOT_TRAIN_TINY_MODELS = {
    "SparseAdam": "sparse gradients only",
    "Muon": "2-D parameters only",
}


def _required(cls: type) -> list[str]:
    return [name for name, p in keyword_parameters(cls).items()
            if p.default is inspect.Parameter.empty]


@pytest.mark.parametrize("name", sorted(optimizer_classes()))
def test_every_optimizer_with_default_keywords(name: str) -> None:
    cls = optimizer_classes()[name]
    required = _required(cls)
    assert set(required) <= {"lr"}, f"{name} needs {required}: extend this test"
    optimizer = {"name": name, **({"lr": 0.01} if required else {})}
    for raw in (SEED, LINREG):
        job = spec(raw, optimizer=optimizer, steps=5)
        if name in OPTIMIZERS_THAT_CANNOT_TRAIN_TINY_MODELS:
            error = refused(job)
            assert error.loc[0] == "optimizer"
            assert name in error.message
            continue
        validate_spec(job)
        sink = ListSink()
        summary = run_training(job, sink)
        assert summary.outcome == "completed", name
        assert len(sink.series("loss")) == 5
        assert all(math.isfinite(v) for v in sink.series("loss"))


def test_the_introspected_optimizers_include_the_usual_ones() -> None:
    assert {"SGD", "Adam", "AdamW", "RMSprop", "LBFGS", "Adagrad", "NAdam", "SparseAdam"} <= set(
        optimizer_classes())
    assert "Optimizer" not in optimizer_classes()


# --------------------------------------------------------------------------- every scheduler

MINIMAL_SCHEDULE_KEYWORDS: dict[str, dict[str, Any]] = {
    "LambdaLR": {"lr_lambda": "0.9**step"},
    "MultiplicativeLR": {"lr_lambda": "0.99"},
    "StepLR": {"step_size": 3},
    "MultiStepLR": {"milestones": [2, 5]},
    "ConstantLR": {},
    "LinearLR": {},
    "ExponentialLR": {"gamma": 0.9},
    "SequentialLR": {"schedulers": [{"name": "ConstantLR"},
                                    {"name": "ExponentialLR", "gamma": 0.9}],
                     "milestones": [3]},
    "CosineAnnealingLR": {},
    "ChainedScheduler": {"schedulers": [{"name": "ConstantLR"},
                                        {"name": "ExponentialLR", "gamma": 0.9}]},
    "ReduceLROnPlateau": {},
    "CyclicLR": {"base_lr": 0.001, "max_lr": 0.01},
    "CosineAnnealingWarmRestarts": {"T_0": 5},
    "OneCycleLR": {"max_lr": 0.1},
    "PolynomialLR": {},
}


@pytest.mark.parametrize("name", sorted(scheduler_classes()))
def test_every_scheduler_with_minimal_keywords(name: str) -> None:
    assert name in MINIMAL_SCHEDULE_KEYWORDS, f"new scheduler {name}: add its minimal keywords"
    schedule = {"name": name, **MINIMAL_SCHEDULE_KEYWORDS[name]}
    job = spec(LINREG, schedule=schedule, batch_size=2)
    validate_spec(job)
    sink = ListSink()
    summary = run_training(job, sink)
    assert summary.outcome == "completed"
    assert len(sink.series("lr")) == job.steps
    # Keywords the minimal table leaves out really are required, where it says so.
    for key in MINIMAL_SCHEDULE_KEYWORDS[name]:
        if key in _required(scheduler_classes()[name]):
            without = {k: v for k, v in schedule.items() if k != key}
            assert refused(spec(LINREG, schedule=without)).loc == ("schedule", key)


def test_the_introspected_schedulers_include_the_usual_ones() -> None:
    assert set(MINIMAL_SCHEDULE_KEYWORDS) <= set(scheduler_classes())
    assert "LRScheduler" not in scheduler_classes()


# --------------------------------------------------------------------------- JobSpec (pydantic)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"extra_field": 1}, "extra"),
        ({"steps": 0}, "steps"),
        ({"steps": -5}, "steps"),
        ({"steps": 10**9}, "steps"),
        ({"batch_size": 0}, "batch_size"),
        ({"seed": -1}, "seed"),
        ({"loss": "mae"}, "loss"),
        ({"device": "tpu"}, "device"),
        ({"model": expression_model("x**2", x=[math.nan])}, "non-finite"),
        ({"model": expression_model("x**2", x=[[1.0], [math.inf]])}, "non-finite"),
        ({"model": expression_model("x**2", x=-math.inf)}, "non-finite"),
        ({"model": {**expression_model("x", x=1.0), "kind": "mlp"}}, "kind"),
        ({"model": expression_model("x", __class__=1.0)}, "not a valid name"),
        ({"model": expression_model("x", **{"lambda": 1.0})}, "not a valid name"),
        ({"model": expression_model("x")}, "parameters"),
        ({"model": expression_model("", x=1.0)}, "expression"),
        ({"model": {**expression_model("x", x=1.0), "extra": 1}}, "extra"),
        ({"data": {"kind": "inline", "targets": [math.nan]}}, "non-finite"),
        ({"data": {"kind": "inline", "inputs": {"u": [1.0, math.inf]}, "targets": [1.0]}},
         "non-finite"),
        ({"data": {"kind": "inline", "inputs": {"1u": [1.0]}, "targets": [1.0]}},
         "not a valid name"),
        ({"optimizer": {"name": "SGD", "lr": math.inf}}, "non-finite"),
        ({"optimizer": {"name": "SGD", "lr": math.nan}}, "non-finite"),
        ({"optimizer": {"name": "Adam", "betas": [0.9, math.nan]}}, "non-finite"),
        ({"optimizer": {"name": "Adam", "x": {"deep": [[[-math.inf]]]}}}, "non-finite"),
        ({"optimizer": {"lr": 0.1}}, "name"),
        ({"optimizer": {"name": ""}}, "name"),
        ({"schedule": {"name": "StepLR", "step_size": 2, "gamma": math.inf}}, "non-finite"),
        ({"loss": "mse", "data": None}, "targets"),
        ({"loss": "mse", "data": {"kind": "inline", "inputs": {"u": [1.0]}}}, "targets"),
    ],
)
def test_job_spec_refuses(changes: dict[str, Any], words: str) -> None:
    raw = copy.deepcopy(SEED)
    raw.update(changes)
    with pytest.raises(ValidationError, match=words):
        JobSpec.model_validate(raw)


def test_job_spec_refuses_non_finite_numbers_in_json() -> None:
    for literal in ("NaN", "Infinity", "-Infinity"):
        text = ('{"model": {"kind": "expression", "expression": "x", "parameters": {"x": '
                + literal + '}}, "loss": "none", "optimizer": {"name": "SGD"}, "steps": 1}')
        with pytest.raises(ValidationError):
            JobSpec.model_validate_json(text)


def test_job_spec_accepts_loss_none_without_data_and_keeps_optimizer_keywords() -> None:
    job = JobSpec.model_validate({
        "model": expression_model("(1 - x)**2", x=-1.5), "loss": "none",
        "optimizer": {"name": "Adam", "lr": 0.1, "betas": [0.8, 0.9]}, "steps": 1,
    })
    assert job.data is None
    assert job.optimizer.kwargs == {"lr": 0.1, "betas": [0.8, 0.9]}
    assert job.device == "auto"
    assert job.seed == 0
