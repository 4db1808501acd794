"""Bad input gets a 4xx naming the field, and nothing is stored or queued for it."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Stack
from tests.seed_table import SEED_SPEC
from tests.stacks import queued_messages


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
