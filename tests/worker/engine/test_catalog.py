"""GET /v1/catalog's source: what the engine can run, described from the code itself."""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Iterator
from typing import Any, get_args

import pytest
import torch

from optimlab.worker.engine.catalog import catalog
from optimlab.worker.engine.data import load_dataset
from optimlab.worker.engine.registry import (
    LENGTH_KEYWORDS,
    keyword_parameters,
    optimizer_classes,
    scheduler_classes,
)
from optimlab.worker.spec import JobSpec, Loss, SklearnName, SyntheticGenerator


def as_json(value: Any) -> Any:
    """What a JSON client can be told about a Python default."""
    if isinstance(value, tuple | list):
        return [as_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def by_name(entries: list[dict[str, Any]], key: str = "name") -> dict[str, dict[str, Any]]:
    named = {entry[key]: entry for entry in entries}
    assert len(named) == len(entries), f"duplicate {key}s"
    return named


def test_the_catalog_is_plain_json() -> None:
    described = catalog()
    text = json.dumps(described, allow_nan=False)
    assert json.loads(text) == described
    assert set(described) == {"models", "data", "sklearn_datasets", "synthetic_generators",
                              "losses", "optimizers", "schedulers"}


@pytest.mark.parametrize(("section", "classes"), [("optimizers", optimizer_classes),
                                                  ("schedulers", scheduler_classes)])
def test_every_introspected_class_is_described_with_its_keywords(section: str,
                                                                 classes: Any) -> None:
    described = by_name(catalog()[section])
    assert list(described) == list(classes())
    for name, cls in classes().items():
        entry = described[name]
        doc = " ".join((inspect.getdoc(cls) or "").split())
        assert entry["description"], name
        assert doc.startswith(entry["description"]), name
        parameters = by_name(entry["parameters"])
        signature = keyword_parameters(cls)
        if name == "ReduceLROnPlateau":  # optimlab's own keyword comes after torch's
            monitor = parameters.pop("monitor")
            assert monitor["default"] == "loss"
            assert "val_loss" in monitor["note"]
        assert list(parameters) == list(signature), name
        for key, parameter in signature.items():
            item = parameters[key]
            declared_required = parameter.default is inspect.Parameter.empty
            if key in LENGTH_KEYWORDS:
                assert item["required"] is False
                assert "steps" in item["note"]
            else:
                assert item["required"] is declared_required, f"{name}.{key}"
            if declared_required:
                assert "default" not in item
            else:
                assert item["default"] == as_json(parameter.default), f"{name}.{key}"


def test_some_well_known_entries() -> None:
    optimizers = by_name(catalog()["optimizers"])
    sgd = by_name(optimizers["SGD"]["parameters"])
    assert sgd["lr"]["required"] is False
    assert sgd["momentum"]["default"] == 0
    assert sgd["nesterov"]["default"] is False
    assert by_name(optimizers["Adam"]["parameters"])["betas"]["default"] == [0.9, 0.999]
    assert by_name(optimizers["LBFGS"]["parameters"])["line_search_fn"]["default"] is None
    assert "params" not in sgd
    assert "self" not in sgd
    schedulers = by_name(catalog()["schedulers"])
    assert by_name(schedulers["StepLR"]["parameters"])["step_size"]["required"] is True
    assert by_name(schedulers["LambdaLR"]["parameters"])["lr_lambda"]["required"] is True
    t_max = by_name(schedulers["CosineAnnealingLR"]["parameters"])["T_max"]
    assert t_max["required"] is False  # the job's steps by default
    assert "optimizer" not in by_name(schedulers["StepLR"]["parameters"])
    plateau = by_name(schedulers["ReduceLROnPlateau"]["parameters"])
    assert plateau["min_lr"]["default"] == 0  # torch's default, as JSON


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    optimizer_classes.cache_clear()
    yield
    optimizer_classes.cache_clear()


class Doubling(torch.optim.Optimizer):
    """An optimizer torch.optim does not have: steps twice as far as SGD.

    More text that the catalog leaves out.
    """

    def __init__(self, params: Any, lr: float = 0.1, gain: float = 2.0,
                 bounds: tuple[float, float] = (-math.inf, math.inf)) -> None:
        super().__init__(params, {"lr": lr, "gain": gain, "bounds": bounds})


def test_a_new_optimizer_in_torch_optim_appears_without_a_table(
        monkeypatch: pytest.MonkeyPatch, fresh_registry: None) -> None:
    monkeypatch.setattr(torch.optim, "Doubling", Doubling, raising=False)
    monkeypatch.setattr(torch.optim, "__all__", [*torch.optim.__all__, "Doubling"])
    entry = by_name(catalog()["optimizers"])["Doubling"]
    assert entry["description"] == "An optimizer torch.optim does not have: steps twice as far " \
                                   "as SGD."
    parameters = by_name(entry["parameters"])
    assert list(parameters) == ["lr", "gain", "bounds"]
    assert parameters["gain"]["default"] == 2.0
    assert parameters["bounds"]["default"] == ["-inf", "inf"]  # JSON has no infinities
    json.dumps(catalog(), allow_nan=False)


def test_every_model_kind_is_described_with_its_fields() -> None:
    models = by_name(catalog()["models"], key="kind")
    assert list(models) == ["expression", "linear", "logistic", "mlp", "cnn"]
    for kind, entry in models.items():
        assert entry["description"], kind
        assert "kind" not in entry["fields"]
    assert set(models["expression"]["required"]) == {"expression", "parameters"}
    assert set(models["mlp"]["fields"]) == {"hidden", "activation", "dropout"}
    assert models["mlp"]["required"] == []
    assert set(models["cnn"]["fields"]) == {"channels", "kernel_size", "hidden", "activation",
                                            "dropout"}
    assert set(models["linear"]["fields"]) == set(models["logistic"]["fields"]) == {"bias"}
    # The defaults a client sees are the ones a spec gets, list-valued ones included.
    for kind in ("mlp", "cnn"):
        model = JobSpec.model_validate({"model": {"kind": kind}, "optimizer": {"name": "SGD"},
                                        "steps": 1}).model
        for key, field in models[kind]["fields"].items():
            assert field["default"] == getattr(model, key), f"{kind}.{key}"


def test_every_data_kind_is_described_with_the_common_options() -> None:
    data = by_name(catalog()["data"], key="kind")
    assert list(data) == ["inline", "synthetic", "sklearn", "upload"]
    for kind, entry in data.items():
        assert entry["description"], kind
        assert {"val_fraction", "standardize", "standardize_targets"} <= set(entry["fields"])
        # which of inputs and targets each option scales, said where the form shows it
        fields = entry["fields"]
        assert "input feature" in fields["standardize"]["description"]
        assert "targets are left as they are" in fields["standardize"]["description"]
        assert "regression targets" in fields["standardize_targets"]["description"]
        assert "class labels" in fields["standardize_targets"]["description"]
        assert fields["standardize_targets"]["default"] is False
    assert data["synthetic"]["required"] == ["generator"]
    assert data["sklearn"]["required"] == ["name"]
    assert data["upload"]["required"] == ["dataset_id"]
    assert data["inline"]["required"] == []


def test_the_listed_data_sets_and_generators_load() -> None:
    described = catalog()
    assert described["sklearn_datasets"] == list(get_args(SklearnName))
    assert set(described["sklearn_datasets"]) == {"digits", "iris", "wine", "breast_cancer",
                                                  "diabetes"}
    assert described["synthetic_generators"] == list(get_args(SyntheticGenerator))
    spec = JobSpec.model_validate(
        {"model": {"kind": "linear"}, "optimizer": {"name": "SGD"}, "steps": 1,
         "data": {"kind": "sklearn", "name": "iris"}})
    for name in described["sklearn_datasets"]:
        data = spec.model_copy(update={"data": spec.data.model_copy(  # type: ignore[union-attr]
            update={"name": name})}).data
        assert load_dataset(data, seed=0, source=None).rows > 0, name
    for generator in described["synthetic_generators"]:
        raw = {"kind": "synthetic", "generator": generator, "samples": 10}
        synthetic = JobSpec.model_validate({**spec.model_dump(), "data": raw}).data
        assert load_dataset(synthetic, seed=0, source=None).rows == 10, generator


def test_every_loss_is_described_with_its_task() -> None:
    losses = by_name(catalog()["losses"])
    assert list(losses) == list(get_args(Loss))
    assert {name for name, entry in losses.items() if entry["task"] == "regression"} == {
        "mse", "l1", "huber"}
    assert {name for name, entry in losses.items() if entry["task"] == "classification"} == {
        "cross_entropy", "bce_with_logits"}
    assert losses["none"]["task"] is None
    assert all(entry["description"] for entry in losses.values())
