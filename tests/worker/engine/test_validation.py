"""Submit-time checks: ``validate_spec`` blames the right field, and accepts what runs."""

from __future__ import annotations

import copy
import inspect
import itertools
import math
import time
from typing import Any

import pytest
from pydantic import ValidationError
from torch import nn

from optimlab.worker.engine import ListSink, SpecError, run_training, validate_spec
from optimlab.worker.engine.registry import (
    keyword_parameters,
    optimizer_classes,
    scheduler_classes,
)
from optimlab.worker.limits import DEFAULT_LIMITS, Limits, use_limits
from optimlab.worker.spec import ExpressionModel, JobSpec
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
    assert isinstance(job.model, ExpressionModel)
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
        ({"model": {**expression_model("x", x=1.0), "kind": "transformer"}}, "kind"),
        ({"model": {**expression_model("x", x=1.0), "kind": "mlp"}}, "extra"),
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
        # the length: exactly one of steps and epochs
        ({"steps": None}, "exactly one of steps and epochs"),
        ({"epochs": 3}, "exactly one of steps and epochs"),
        ({"steps": None, "epochs": 0}, "epochs"),
        ({"eval_every": 0}, "eval_every"),
        ({"clip_grad_norm": 0.0}, "clip_grad_norm"),
        ({"diverge_factor": 1.0}, "diverge_factor"),
        ({"drop_last": "sometimes"}, "drop_last"),
        ({"stop": {"patience": 0}}, "patience"),
        ({"stop": {"max_seconds": 0}}, "max_seconds"),
        ({"stop": {"converge_steps": 0}}, "converge_steps"),
        ({"stop": {"loss_below": 1.0, "typo": 1}}, "extra"),
        ({"schedule": {"name": "ReduceLROnPlateau", "monitor": "accuracy"}}, "monitor"),
        ({"parameter_groups": [{"match": "", "options": {}}]}, "match"),
        ({"parameter_groups": [{"match": "bias", "options": {"lr": math.nan}}]}, "non-finite"),
        ({"parameter_groups": [{"match": "bias"}] * 17}, "parameter_groups"),
        # built-in models and data kinds
        ({"model": {"kind": "mlp", "hidden": [0]}}, "hidden"),
        ({"model": {"kind": "mlp", "hidden": [5000]}}, "hidden"),
        ({"model": {"kind": "mlp", "dropout": 1.0}}, "dropout"),
        ({"model": {"kind": "mlp", "activation": "swish"}}, "activation"),
        ({"model": {"kind": "cnn", "channels": []}}, "channels"),
        ({"model": {"kind": "cnn", "kernel_size": 12}}, "kernel_size"),
        ({"model": {"kind": "linear", "hidden": [3]}}, "extra"),
        ({"data": {"kind": "synthetic", "generator": "swirls"}}, "generator"),
        ({"data": {"kind": "synthetic", "generator": "linear", "samples": 1}}, "samples"),
        ({"data": {"kind": "synthetic", "generator": "linear", "samples": 1_000_000,
                   "features": 1_000}}, "exceed the limit"),
        ({"data": {"kind": "sklearn", "name": "mnist"}}, "name"),
        ({"data": {"kind": "sklearn", "name": "iris", "val_fraction": 0.95}}, "val_fraction"),
        ({"data": {"kind": "upload", "dataset_id": "abc"}}, "dataset_id"),
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


# --------------------------------------------------------------------------- real experiments

IRIS: dict[str, Any] = {"kind": "sklearn", "name": "iris"}
IRIS_SPLIT: dict[str, Any] = {**IRIS, "val_fraction": 0.2}
MLP: dict[str, Any] = {"kind": "mlp", "hidden": [8]}


def experiment(**changes: Any) -> JobSpec:
    """An MLP on iris, changed as asked (None removes a key)."""
    raw: dict[str, Any] = {"model": MLP, "data": IRIS, "optimizer": {"name": "SGD", "lr": 0.1},
                           "steps": 10, "device": "cpu"}
    raw.update(changes)
    return JobSpec.model_validate({k: v for k, v in raw.items() if v is not None})


@pytest.mark.parametrize(
    ("changes", "loc", "words"),
    [
        # losses against models and data
        ({"model": {"kind": "logistic"}, "loss": "mse"}, ("loss",), "logistic"),
        ({"model": {"kind": "logistic"}, "loss": "huber",
          "data": {"kind": "synthetic", "generator": "linear"}}, ("loss",), "logistic"),
        ({"model": {"kind": "logistic"}, "loss": "bce_with_logits"}, ("loss",),
         "two classes; the targets have 3"),
        ({"model": {"kind": "linear"}, "loss": "bce_with_logits",
          "data": {"kind": "synthetic", "generator": "blobs", "classes": 4}}, ("loss",),
         "two classes"),
        ({"loss": "mse"}, ("loss",), "regression loss"),
        ({"loss": "cross_entropy", "data": {"kind": "synthetic", "generator": "linear"}},
         ("loss",), "classification loss"),
        ({"loss": "cross_entropy", "data": {"kind": "inline", "inputs": {"u": [1.0, 2.0]},
                                            "targets": [0.5, 1.0]}},
         ("data", "targets"), "class labels"),
        ({"model": expression_model("w*x0 + b", w=1.0, b=0.0), "loss": "cross_entropy"},
         ("model", "expression"), "cross_entropy needs one row of class scores"),
        ({"model": expression_model("w*x0 + b", w=[1.0, 1.0], b=0.0),
          "loss": "cross_entropy"},
         ("model", "expression"), "cannot be evaluated"),
        # built-in models need inputs and targets (and learn from targets)
        ({"data": None}, ("data",), "needs data with targets"),
        ({"data": {"kind": "inline", "inputs": {"u": [1.0, 2.0, 3.0]}}}, ("data",),
         "needs data with targets"),
        ({"data": {"kind": "inline", "targets": [0.0, 1.0, 1.0]}}, ("data",),
         "needs input features"),
        ({"data": {"kind": "inline", "inputs": {"u": [1.0]}}, "loss": "none"}, ("loss",),
         "trains against targets"),
        ({"model": {"kind": "cnn"}}, ("model", "kind"), "image data"),
        ({"model": {"kind": "cnn"}, "data": {"kind": "synthetic", "generator": "linear"}},
         ("model", "kind"), "image data"),
        # parameter groups
        ({"parameter_groups": [{"match": "conv*", "options": {"lr": 0.1}}]},
         ("parameter_groups", 0, "match"), "matches no parameter"),
        ({"parameter_groups": [{"match": "bias", "options": {"lr": 0.1}},
                               {"match": "*.bias", "options": {"lr": 0.2}}]},
         ("parameter_groups", 1, "match"), "0.weight, 0.bias, 2.weight, 2.bias"),
        ({"parameter_groups": [{"match": "bias", "options": {"momentun": 0.5}}]},
         ("parameter_groups", 0, "options", "momentun"), "no keyword 'momentun'"),
        ({"parameter_groups": [{"match": "bias", "options": {"params": []}}]},
         ("parameter_groups", 0, "options", "params"), "no keyword"),
        ({"optimizer": {"name": "Adam"},
          "parameter_groups": [{"match": "weight", "options": {"momentum": 0.5}}]},
         ("parameter_groups", 0, "options", "momentum"), "Adam has no keyword"),
        # what watches val_loss needs evaluations on a validation split
        ({"schedule": {"name": "ReduceLROnPlateau", "monitor": "val_loss"},
          "data": IRIS_SPLIT}, ("schedule", "monitor"), "eval_every"),
        ({"schedule": {"name": "ReduceLROnPlateau", "monitor": "val_loss"},
          "eval_every": 2}, ("schedule", "monitor"), "validation split"),
        ({"schedule": {"name": "StepLR", "step_size": 2, "monitor": "val_loss"},
          "data": IRIS_SPLIT, "eval_every": 2}, ("schedule", "monitor"), "ReduceLROnPlateau"),
        ({"stop": {"patience": 3}, "eval_every": 2}, ("stop", "patience"), "validation split"),
        ({"stop": {"patience": 3}, "data": IRIS_SPLIT}, ("stop", "patience"), "eval_every"),
        # batches and lengths
        ({"batch_size": 151, "drop_last": True}, ("batch_size",),
         "larger than the 150 training rows"),
        ({"batch_size": 121, "drop_last": True, "data": IRIS_SPLIT, "steps": None,
          "epochs": 2}, ("batch_size",), "larger than the 120 training rows"),
        ({"batch_size": 1, "steps": None, "epochs": 10_000_000}, ("epochs",),
         "exceed the limit"),
        # data options
        ({"data": {"kind": "inline", "inputs": {"u": [1.0, 2.0]}, "targets": [0.0, 1.0],
                   "val_fraction": 0.9}}, ("data", "val_fraction"), "none for training"),
        ({"data": {"kind": "synthetic", "generator": "moons", "features": 3}},
         ("data", "features"), "exactly 2 features"),
        ({"data": {"kind": "synthetic", "generator": "circles", "classes": 3}},
         ("data", "classes"), "exactly 2 classes"),
        ({"data": {"kind": "upload", "dataset_id": "0" * 64}}, ("data", "dataset_id"),
         "need the service"),
        # only regression targets can be standardised
        ({"data": {**IRIS, "standardize_targets": True}}, ("data", "standardize_targets"),
         "class labels"),
        ({"data": {"kind": "inline", "inputs": {"u": [1.0, 2.0, 3.0]},
                   "targets": [0.0, 1.0, 1.0], "standardize_targets": True},
          "loss": "cross_entropy"}, ("data", "standardize_targets"),
         "'cross_entropy' trains on class labels"),
        ({"model": {"kind": "logistic"},
          "data": {"kind": "synthetic", "generator": "moons", "standardize_targets": True}},
         ("data", "standardize_targets"), "class labels"),
        ({"model": expression_model("(u - w)**2", w=0.0), "loss": "none",
          "data": {"kind": "inline", "inputs": {"u": [1.0, 2.0]}, "targets": [1.0, 2.0],
                   "standardize_targets": True}},
         ("data", "standardize_targets"), "'none' uses no targets"),
        ({"model": expression_model("(u - w)**2", w=0.0), "loss": "none",
          "data": {"kind": "inline", "inputs": {"u": [1.0, 2.0]},
                   "standardize_targets": True}},
         ("data", "standardize_targets"), "no targets"),
        # expressions over sklearn's columns x0 .. x3
        ({"model": expression_model("w*x999", w=1.0), "loss": None,
          "data": {"kind": "sklearn", "name": "diabetes"}}, ("model", "expression"), "'x999'"),
        # a nested schedule that fails while stepping
        ({"schedule": {"name": "SequentialLR", "milestones": [3], "schedulers": [
            {"name": "ConstantLR"},
            {"name": "ChainedScheduler", "schedulers": [{"name": "ConstantLR"}]}]}},
         ("schedule",), "SequentialLR"),
    ],
)
def test_experiment_mistakes_are_blamed_on_their_field(
        changes: dict[str, Any], loc: tuple[Any, ...], words: str) -> None:
    error = refused(experiment(**changes))
    assert error.loc == loc
    assert words in error.message


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"model": {"kind": "logistic"}},
        {"model": {"kind": "logistic"},
         "data": {"kind": "synthetic", "generator": "moons", "samples": 20}},
        {"model": {"kind": "linear"}, "loss": "huber",
         "data": {"kind": "sklearn", "name": "diabetes"}},
        {"model": {"kind": "linear"},
         "data": {"kind": "sklearn", "name": "diabetes", "val_fraction": 0.2,
                  "standardize": True, "standardize_targets": True}, "eval_every": 5},
        {"model": {"kind": "cnn", "channels": [2]}, "data": {"kind": "sklearn", "name": "digits"},
         "batch_size": 64},
        # the expression reads sklearn's columns by name (x0 .. x9 of diabetes)
        {"model": expression_model("w*x0 + v*x9 + b", w=0.0, v=0.0, b=0.0), "loss": None,
         "data": {"kind": "sklearn", "name": "diabetes", "standardize": True}},
        # cross_entropy on a formula giving one row of 3 class scores per sample
        {"model": expression_model("w*u + b", w=[0.1, 0.2, 0.3], b=[0.0, 0.0, 0.0]),
         "loss": "cross_entropy",
         "data": {"kind": "inline", "inputs": {"u": [[-1.0], [0.0], [1.0], [2.0]]},
                  "targets": [0, 1, 2, 2]}},
        {"batch_size": 150, "drop_last": True, "steps": None, "epochs": 2},
        {"data": IRIS_SPLIT, "eval_every": 2, "stop": {"patience": 2, "converge_tol": 0.0},
         "schedule": {"name": "ReduceLROnPlateau", "monitor": "val_loss"}},
        {"parameter_groups": [{"match": "bias", "options": {"lr": 0.5, "weight_decay": 0.0}},
                              {"match": "0.*", "options": {"momentum": 0.9}}],
         "clip_grad_norm": 1.0, "diverge_factor": 10.0},
    ],
)
def test_experiments_that_make_sense_pass_and_run(changes: dict[str, Any]) -> None:
    job = experiment(**changes)
    validate_spec(job)
    sink = ListSink()
    summary = run_training(job, sink)
    assert summary.outcome in ("completed", "stopped", "converged")
    assert all(math.isfinite(v) for v in sink.series("loss"))


def test_an_mlp_over_the_parameter_limit_is_refused_before_allocation(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # 4 iris features, 3 classes, four layers 4096 wide: just over 50 million values.
    hidden = [4096] * 4
    widths = [4, *hidden, 3]
    count = sum(a * b + b for a, b in itertools.pairwise(widths))
    assert count > DEFAULT_LIMITS.max_parameters
    built_on: list[str] = []
    reset = nn.Linear.reset_parameters

    def spy(self: nn.Linear) -> None:
        built_on.append(self.weight.device.type)
        reset(self)

    monkeypatch.setattr(nn.Linear, "reset_parameters", spy)
    started = time.perf_counter()
    error = refused(experiment(model={"kind": "mlp", "hidden": hidden}))
    assert error.loc == ("model",)
    assert f"{count} parameters exceed the limit of {DEFAULT_LIMITS.max_parameters}" in (
        error.message)
    assert built_on, "the network was never built"
    assert set(built_on) == {"meta"}, "weights were allocated before the check"
    assert time.perf_counter() - started < 10


def test_the_parameter_limit_is_inclusive() -> None:
    # mlp [8] on iris: (4*8 + 8) + (8*3 + 3) values.
    count = (4 * 8 + 8) + (8 * 3 + 3)
    with use_limits(Limits(max_parameters=count)):
        validate_spec(experiment())
    with use_limits(Limits(max_parameters=count - 1)):
        error = refused(experiment())
    assert error.loc == ("model",)
    assert str(count) in error.message


def test_an_expression_may_use_sklearn_columns_but_only_those_it_has() -> None:
    base = {"data": {"kind": "sklearn", "name": "diabetes"}, "loss": None}
    validate_spec(experiment(model=expression_model("w*x0 + b", w=0.0, b=0.0), **base))
    error = refused(experiment(model=expression_model("w*x999 + b", w=0.0, b=0.0), **base))
    assert error.loc == ("model", "expression")
    assert "x999" in error.message
    assert "x9" in error.message  # the names it could have used are listed
