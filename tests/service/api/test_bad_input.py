"""Bad input gets a 4xx naming the field, and nothing is stored or queued for it."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import EMBEDDED_ONLY, Stack
from tests.seed_table import SEED_SPEC
from tests.stacks import queued_messages

pytestmark = EMBEDDED_ONLY  # the API's own checks: the store is not asked

def spec_with(path: str, value: Any) -> dict[str, Any]:
    """The seed spec with ``path`` (dotted) set to ``value``; value ... deletes the key."""
    spec = copy.deepcopy(SEED_SPEC)
    *parents, last = path.split(".")
    node = spec
    for key in parents:
        node = node.setdefault(key, {})
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return spec


def rosenbrock(**changes: Any) -> dict[str, Any]:
    spec = {"model": {"kind": "expression", "expression": "(1 - x)**2 + 100*(y - x**2)**2",
                      "parameters": {"x": -1.5, "y": 2.0}},
            "loss": "none", "optimizer": {"name": "Adam", "lr": 0.01}, "steps": 10}
    return {**spec, **changes}


def network(**changes: Any) -> dict[str, Any]:
    """A small MLP on iris (three classes, tabular): the base of the built-in model cases."""
    spec = {"model": {"kind": "mlp", "hidden": [8]}, "data": {"kind": "sklearn", "name": "iris"},
            "optimizer": {"name": "SGD", "lr": 0.1}, "steps": 10}
    return {**spec, **changes}


BAD_SPECS: list[tuple[str, dict[str, Any], str]] = [
    ("missing steps", spec_with("steps", ...), "steps"),
    ("zero steps", spec_with("steps", 0), "steps"),
    ("absurd steps", spec_with("steps", 10**12), "steps"),
    ("zero batch", spec_with("batch_size", 0), "batch_size"),
    ("negative seed", spec_with("seed", -1), "seed"),
    ("unknown field", spec_with("stpes", 20), "stpes"),
    ("unknown device", spec_with("device", "tpu"), "device"),
    ("unknown loss", spec_with("loss", "hinge"), "loss"),
    ("unknown model kind", spec_with("model.kind", "resnet"), "model"),
    ("unknown data kind", spec_with("data.kind", "s3"), "data"),
    ("mse without targets", spec_with("data.targets", ...), "data.targets"),
    ("unknown optimizer", spec_with("optimizer.name", "SGDD"), "optimizer.name"),
    ("unknown optimizer keyword", spec_with("optimizer.momentun", 0.9), "optimizer.momentun"),
    ("refused lr", spec_with("optimizer.lr", -1.0), "optimizer"),
    ("wrong keyword type", spec_with("optimizer.lr", "fast"), "optimizer"),
    ("nesterov without momentum", spec_with("optimizer.nesterov", True), "optimizer"),
    ("unknown schedule", spec_with("schedule", {"name": "WarmupLR"}), "schedule.name"),
    ("schedule missing keyword", spec_with("schedule", {"name": "StepLR"}), "schedule.step_size"),
    ("schedule unknown keyword", spec_with("schedule", {"name": "StepLR", "step_size": 2,
                                                        "gama": 0.5}), "schedule.gama"),
    ("schedule refuses value", spec_with("schedule", {"name": "ExponentialLR", "gamma": "x"}),
     "schedule"),
    ("schedule function is code", spec_with("schedule", {
        "name": "LambdaLR", "lr_lambda": "__import__('os').system('true')"}),
     "schedule.lr_lambda"),
    ("one-cycle too short", spec_with("schedule", {"name": "OneCycleLR", "max_lr": 0.1,
                                                   "total_steps": 5}), "schedule"),
    ("attribute access", spec_with("model.expression", "x.data**2"), "model.expression"),
    ("dunder escape", spec_with("model.expression", "x.__class__.__bases__"), "model.expression"),
    ("call outside the list", spec_with("model.expression", "open('/etc/passwd')"),
     "model.expression"),
    ("eval", spec_with("model.expression", "eval('x')"), "model.expression"),
    ("undeclared name", spec_with("model.expression", "y**2"), "model.expression"),
    ("subscript", spec_with("model.expression", "x[0]**2"), "model.expression"),
    ("lambda", spec_with("model.expression", "(lambda: x)()"), "model.expression"),
    ("string", spec_with("model.expression", "'x'"), "model.expression"),
    ("huge power", spec_with("model.expression", "x * 9**9**9"), "model.expression"),
    ("syntax error", spec_with("model.expression", "x**"), "model.expression"),
    ("deep nesting", spec_with("model.expression", "(" * 500 + "x" + ")" * 500),
     "model.expression"),
    ("long chain", spec_with("model.expression", "x+" * 20_000 + "x"), "model.expression"),
    ("no parameter used", spec_with("model.expression", "16.0 + 0*1"), "model.expression"),
    ("bad parameter name", spec_with("model.parameters", {"x y": [1.0]}), "model.parameters"),
    ("no parameters", spec_with("model.parameters", {}), "model.parameters"),
    ("ragged parameter", spec_with("model.parameters", {"x": [[1.0], [1.0, 2.0]]}),
     "model.parameters.x"),
    ("shape mismatch", {**SEED_SPEC,
                        "model": {"kind": "expression", "expression": "w*u",
                                  "parameters": {"w": 1.0}},
                        "data": {"kind": "inline", "inputs": {"u": [1.0, 2.0]},
                                 "targets": [[1.0], [2.0]]}}, "model.expression"),
    ("rows differ", {**spec_with("model.expression", "w*u"),
                     "model": {"kind": "expression", "expression": "w*u",
                               "parameters": {"w": 1.0}},
                     "data": {"kind": "inline", "inputs": {"u": [1.0, 2.0]},
                              "targets": [1.0, 2.0, 3.0]}}, "data"),
    ("input shadows parameter", {**SEED_SPEC, "data": {"kind": "inline", "inputs": {"x": [1.0]},
                                                       "targets": [16.0]}}, "data.inputs.x"),
    ("loss none on a vector", rosenbrock(model={"kind": "expression", "expression": "x*u",
                                                "parameters": {"x": 1.0}},
                                         data={"kind": "inline", "inputs": {"u": [1.0, 2.0]}}),
     "model.expression"),
    ("sparse optimizer on dense gradients", rosenbrock(optimizer={"name": "SparseAdam"}),
     "optimizer"),
    ("optimizer name is a base class", spec_with("optimizer.name", "Optimizer"),
     "optimizer.name"),
    ("optimizer name is a module member", spec_with("optimizer.name", "lr_scheduler"),
     "optimizer.name"),
    ("scheduler name is a base class", spec_with("schedule", {"name": "LRScheduler"}),
     "schedule.name"),
    ("params keyword smuggled", spec_with("optimizer.params", [1.0]), "optimizer.params"),
    ("nested list too long", spec_with("optimizer.betas", [0.9] * 20_000), "optimizer"),
    ("steps and epochs", spec_with("epochs", 3), "steps"),
    ("neither steps nor epochs", spec_with("steps", ...), "steps"),
    ("zero eval_every", spec_with("eval_every", 0), "eval_every"),
    ("negative clipping", spec_with("clip_grad_norm", -1.0), "clip_grad_norm"),
    ("diverge factor below one", spec_with("diverge_factor", 0.5), "diverge_factor"),
    ("zero-width layer", network(model={"kind": "mlp", "hidden": [0]}), "model.hidden"),
    ("dropout of one", network(model={"kind": "mlp", "dropout": 1.0}), "model.dropout"),
    ("network over the size limit", network(model={"kind": "mlp", "hidden": [4096] * 8}),
     "model"),
    ("cnn on tabular data", network(model={"kind": "cnn"}), "model.kind"),
    ("logistic with a regression loss", network(model={"kind": "logistic"}, loss="mse"),
     "loss"),
    ("bce on three classes", network(loss="bce_with_logits"), "loss"),
    ("regression loss on class labels", network(loss="huber"), "loss"),
    ("classification loss on a regression set",
     network(data={"kind": "sklearn", "name": "diabetes"}, loss="cross_entropy"), "loss"),
    ("unknown sklearn set", network(data={"kind": "sklearn", "name": "mnist"}), "data.name"),
    ("unknown generator", network(data={"kind": "synthetic", "generator": "swiss"}),
     "data.generator"),
    ("generated data too large", network(data={"kind": "synthetic", "generator": "linear",
                                               "samples": 1_000_000, "features": 1_000}),
     "data"),
    ("moons in five dimensions", network(data={"kind": "synthetic", "generator": "moons",
                                               "features": 5}), "data.features"),
    ("validation fraction too large", network(data={"kind": "sklearn", "name": "iris",
                                                    "val_fraction": 0.95}), "data.val_fraction"),
    ("unknown upload", network(data={"kind": "upload", "dataset_id": "ab" * 32}),
     "data.dataset_id"),
    ("upload id not a hash", network(data={"kind": "upload", "dataset_id": "../../etc"}),
     "data.dataset_id"),
    ("cross_entropy on a scalar expression", {**SEED_SPEC, "loss": "cross_entropy"},
     "model.expression"),
    ("expression on a missing feature",
     {**rosenbrock(), "model": {"kind": "expression", "expression": "sum(w*x999)",
                                "parameters": {"w": 1.0}},
      "data": {"kind": "sklearn", "name": "iris"}}, "model.expression"),
    ("group matching nothing", network(parameter_groups=[{"match": "gamma*"}]),
     "parameter_groups.0.match"),
    ("group with an unknown option", network(parameter_groups=[
        {"match": "bias", "options": {"learning_rate": 0.1}}]),
     "parameter_groups.0.options.learning_rate"),
    ("patience without a validation split", network(stop={"patience": 3}, eval_every=5),
     "stop.patience"),
    ("plateau on val_loss without evaluations",
     network(data={"kind": "sklearn", "name": "iris", "val_fraction": 0.2},
             schedule={"name": "ReduceLROnPlateau", "monitor": "val_loss"}),
     "schedule.monitor"),
    ("a metric for a scheduler that watches none",
     network(data={"kind": "sklearn", "name": "iris", "val_fraction": 0.2}, eval_every=5,
             schedule={"name": "StepLR", "step_size": 2, "monitor": "val_loss"}),
     "schedule.monitor"),
    ("drop_last with a batch larger than the data", network(batch_size=1000, drop_last=True),
     "batch_size"),
    ("mini-batches without data", rosenbrock(batch_size=4), "batch_size"),
    ("standardised class labels",
     network(data={"kind": "sklearn", "name": "iris", "standardize_targets": True}),
     "data.standardize_targets"),
]


@pytest.mark.parametrize(("case", "spec", "field"), BAD_SPECS, ids=[c[0] for c in BAD_SPECS])
def test_bad_spec_is_422_naming_the_field_and_leaves_no_trace(
        client: TestClient, stack: Stack, case: str, spec: dict[str, Any], field: str) -> None:
    response = client.post("/v1/jobs", json=spec)

    assert response.status_code == 422, f"{case}: {response.status_code} {response.text[:300]}"
    body = response.json()
    assert field in body["message"], f"{case}: {body['message']!r} does not name {field!r}"
    assert body["detail"], case
    assert client.get("/v1/jobs").json()["data"] == []
    assert queued_messages(stack) == 0


NON_JSON_BODIES = [
    ("not json", b"{model: x**2}"),
    ("NaN parameter", json.dumps(spec_with("model.parameters", {"x": [float("nan")]})).encode()),
    ("infinite lr", json.dumps(spec_with("optimizer.lr", float("inf"))).encode()),
    ("deeply nested list", b'{"model": {"kind": "expression", "expression": "x", "parameters": '
                           b'{"x": ' + b"[" * 5000 + b"1" + b"]" * 5000 + b"}}}"),
    ("array instead of object", b"[1, 2, 3]"),
]


@pytest.mark.parametrize(("case", "body"), NON_JSON_BODIES, ids=[c[0] for c in NON_JSON_BODIES])
def test_malformed_bodies_are_4xx_and_leave_no_trace(client: TestClient, stack: Stack,
                                                     case: str, body: bytes) -> None:
    response = client.post("/v1/jobs", content=body,
                           headers={"content-type": "application/json"})

    assert 400 <= response.status_code < 500, f"{case}: {response.status_code}"
    assert response.json()
    assert client.get("/v1/jobs").json()["data"] == []
    assert queued_messages(stack) == 0


def test_a_body_over_the_limit_is_413(stack: Stack) -> None:
    from optimlab.service.api.main import create_app

    settings = stack.settings.model_copy(update={"max_request_bytes": 10_000})
    with TestClient(create_app(settings)) as client:
        big = spec_with("data.targets", [16.0] * 5_000)
        response = client.post("/v1/jobs", json=big)
        streamed = client.post("/v1/jobs", content=iter([json.dumps(big).encode()]),
                               headers={"content-type": "application/json"})

    assert response.status_code == 413
    assert streamed.status_code == 413
    assert queued_messages(stack) == 0


def test_a_spec_near_the_array_limit_is_refused_not_crashing(client: TestClient) -> None:
    spec = spec_with("model.parameters", {"x": [1.0] * 3_000_000})

    response = client.post("/v1/jobs", json=spec)

    assert response.status_code == 422
    assert "model.parameters" in response.json()["message"]


def test_a_parameter_group_with_a_refused_value_is_422(client: TestClient, stack: Stack) -> None:
    spec = network(parameter_groups=[{"match": "bias", "options": {"lr": -1.0}}])

    response = client.post("/v1/jobs", json=spec)

    assert response.status_code == 422
    assert "parameter_groups.0.options" in response.json()["message"]
    assert queued_messages(stack) == 0
