"""No spec field reaches a shell, a file path, ``eval`` or an import: every name a spec
gives is looked up in a closed set (torch.optim's exports, the declared literals, the
expression language's functions), ids are hashes, and paths are only keys of the spec.

Each hostile value is refused with a 422 naming its field, and nothing it names is ever
touched (``sentinel`` would be created by any of them that ran)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import EMBEDDED_ONLY, Stack
from tests.seed_table import SEED_SPEC
from tests.stacks import queued_messages

pytestmark = EMBEDDED_ONLY  # the API's own checks: the store is not asked

IRIS: dict[str, Any] = {"model": {"kind": "mlp", "hidden": [4]},
                        "data": {"kind": "sklearn", "name": "iris"},
                        "optimizer": {"name": "SGD", "lr": 0.1}, "steps": 5}


def _with(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = spec
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return spec


def _hostile(sentinel: Path) -> list[tuple[str, dict[str, Any], str]]:
    shell = f"touch {sentinel}"
    python = f"__import__('os').system('{shell}')"
    return [
        ("optimizer: a dotted name", _with(SEED_SPEC, "optimizer.name", "os.system"),
         "optimizer.name"),
        ("optimizer: a module attribute", _with(SEED_SPEC, "optimizer.name", "__builtins__"),
         "optimizer.name"),
        ("optimizer: a torch function", _with(SEED_SPEC, "optimizer.name", "torch.load"),
         "optimizer.name"),
        ("optimizer: a shell command", _with(SEED_SPEC, "optimizer.name", shell),
         "optimizer.name"),
        ("optimizer keyword: code", _with(SEED_SPEC, "optimizer.lr", python), "optimizer"),
        ("schedule: a dotted name", _with(SEED_SPEC, "schedule", {"name": "subprocess.run"}),
         "schedule.name"),
        ("schedule function: code", _with(SEED_SPEC, "schedule", {
            "name": "LambdaLR", "lr_lambda": python}), "schedule.lr_lambda"),
        ("schedule function: attribute", _with(SEED_SPEC, "schedule", {
            "name": "LambdaLR", "lr_lambda": "step.__class__"}), "schedule.lr_lambda"),
        ("loss: a torch path", _with(SEED_SPEC, "loss", "torch.nn.functional.mse_loss"),
         "loss"),
        ("activation: a dotted name", _with(IRIS, "model.activation", "os.system"),
         "model.activation"),
        ("sklearn set: a path", _with(IRIS, "data.name", "/etc/passwd"), "data.name"),
        ("sklearn set: a loader name", _with(IRIS, "data.name", "fetch_openml"),
         "data.name"),
        ("upload: a relative path", _with(IRIS, "data", {
            "kind": "upload", "dataset_id": "../" * 10 + "etc/passwd"}), "data.dataset_id"),
        ("upload: an absolute path", _with(IRIS, "data", {
            "kind": "upload", "dataset_id": str(sentinel)}), "data.dataset_id"),
        ("upload: a URL", _with(IRIS, "data", {
            "kind": "upload", "dataset_id": "file:///etc/passwd"}), "data.dataset_id"),
        ("data kind: a file", _with(IRIS, "data", {"kind": "file", "path": "/etc/passwd"}),
         "data"),
        ("expression: import", _with(SEED_SPEC, "model.expression", python),
         "model.expression"),
        ("expression: dunder walk", _with(SEED_SPEC, "model.expression",
                                          "x.__class__.__mro__[1].__subclasses__()"),
         "model.expression"),
        ("parameter name: a dunder", _with(SEED_SPEC, "model.parameters", {"__class__": 1.0}),
         "model.parameters"),
        ("input name: a path", _with(SEED_SPEC, "data", {
            "kind": "inline", "inputs": {"../x": [1.0]}, "targets": [1.0]}), "data"),
        ("group match: a path", _with(IRIS, "parameter_groups", [
            {"match": "/etc/*", "options": {"lr": 0.1}}]), "parameter_groups.0.match"),
        ("group option: code", _with(IRIS, "parameter_groups", [
            {"match": "bias", "options": {"lr": python}}]), "parameter_groups.0.options"),
        ("tag: a shell command", _with(SEED_SPEC, "tags", [shell]), "tags.0"),
        ("device: a path", _with(SEED_SPEC, "device", "/dev/null"), "device"),
    ]


CASES = [case for case, _, _ in _hostile(Path("/tmp/x"))]


@pytest.mark.parametrize("case", CASES)
def test_a_hostile_name_is_refused_naming_its_field_and_never_used(
        client: TestClient, stack: Stack, tmp_path: Path, case: str) -> None:
    sentinel = tmp_path / "ran"
    _, spec, field = next(c for c in _hostile(sentinel) if c[0] == case)

    response = client.post("/v1/jobs", json=spec)

    assert response.status_code == 422, f"{case}: {response.status_code} {response.text[:200]}"
    assert field in response.json()["message"], f"{case}: {response.json()['message']}"
    assert not sentinel.exists()
    assert queued_messages(stack) == 0


def test_a_sweep_axis_is_a_key_of_the_spec_not_a_path_or_an_attribute(
        client: TestClient, stack: Stack) -> None:
    for axis in ("optimizer.__class__", "../optimizer.lr", "optimizer.lr; rm -rf /",
                 "__import__('os')"):
        response = client.post("/v1/sweeps", json={"base": SEED_SPEC,
                                                   "axes": {axis: [0.1, 0.2]}})
        assert response.status_code == 422, f"{axis}: {response.text[:200]}"
    assert queued_messages(stack) == 0
