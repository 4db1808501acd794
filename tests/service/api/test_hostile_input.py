"""Hostile input at the API: NUL bytes in any text, huge bodies, wide uploads, and every
configurable limit refused with a 4xx that names the field and the setting."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from optimlab.service.api.main import create_app
from tests.conftest import EMBEDDED_ONLY, Stack
from tests.seed_table import SEED_SPEC
from tests.stacks import queued_messages

pytestmark = EMBEDDED_ONLY  # the API's own checks: the store is not asked

def _job(client: TestClient) -> str:
    response = client.post("/v1/jobs", json=SEED_SPEC)
    assert response.status_code == 201
    return str(response.json()["id"])


NUL_URLS = [
    ("/v1/jobs/{job}/metrics?names=%00", "names"),
    ("/v1/jobs/{job}/metrics?names=loss%00x", "names"),
    ("/v1/jobs?name=%00", "name"),
    ("/v1/jobs?tag=%00", "tag"),
    ("/v1/jobs/{job}/plot.svg?metrics=%00", "metrics"),
    ("/v1/jobs/{job}/metrics.csv?names=a%00", "names"),
    ("/v1/compare?jobs={job}&names=%00", "names"),
    ("/v1/datasets/%00", "path"),
]


@pytest.mark.parametrize(("url", "field"), NUL_URLS, ids=[u for u, _ in NUL_URLS])
def test_nul_in_the_url_is_422_naming_the_parameter(client: TestClient, url: str,
                                                    field: str) -> None:
    response = client.get(url.format(job=_job(client)))

    assert response.status_code == 422, response.text
    assert field in response.json()["message"]
    assert "NUL" in response.json()["message"]


NUL_BODIES = [
    ("post", "/v1/jobs", {**SEED_SPEC, "name": "a\x00b"}, "name"),
    ("post", "/v1/jobs", {**SEED_SPEC, "tags": ["ok", "x\x00"]}, "tags.1"),
    ("post", "/v1/jobs", {**SEED_SPEC, "optimizer": {"name": "SGD", "lr": 0.1, "k\x00": 1}},
     "optimizer.k"),
    ("patch", "/v1/jobs/{job}", {"name": "\x00"}, "name"),
    ("post", "/v1/sweeps", {"base": SEED_SPEC, "name": "s\x00"}, "name"),
]


@pytest.mark.parametrize(("method", "url", "body", "field"), NUL_BODIES,
                         ids=[f"{m} {u} {f}" for m, u, _, f in NUL_BODIES])
def test_nul_in_a_json_string_is_422_naming_the_field(
        client: TestClient, stack: Stack, method: str, url: str, body: dict[str, Any],
        field: str) -> None:
    job = _job(client)
    before = queued_messages(stack)

    response = client.request(method, url.format(job=job), json=body)

    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith(field)
    assert queued_messages(stack) == before
    assert client.get(f"/v1/jobs/{job}").json()["name"] == SEED_SPEC.get("name", "")


def test_an_escaped_backslash_before_u0000_is_plain_text(client: TestClient) -> None:
    # JSON "a\\u0000" is the six characters a, \, u, 0, 0, 0, 0: no NUL.
    response = client.post("/v1/jobs", json={**SEED_SPEC, "name": "a\\u0000"})

    assert response.status_code == 201, response.text
    assert response.json()["name"] == "a\\u0000"


def _upload(client: TestClient, content: bytes, *, filename: str = "data.csv",
            **form: str) -> Any:
    return client.post("/v1/datasets", files={"file": (filename, content)},
                       data={"target": "y", **form})


def test_a_csv_with_nul_in_a_column_name_is_422(client: TestClient) -> None:
    response = _upload(client, b"a\x00b,y\n1,2\n3,4\n")

    assert response.status_code == 422, response.text
    assert "file" in response.json()["message"]
    assert "control character" in response.json()["message"]
    assert client.get("/v1/datasets").json()["data"] == []


def test_nul_in_an_upload_form_field_is_422_naming_it(client: TestClient) -> None:
    response = _upload(client, b"a,y\n1,2\n3,4\n", name="n\x00")

    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith("name")
    assert client.get("/v1/datasets").json()["data"] == []


def test_a_csv_wider_than_the_column_limit_is_refused_before_its_rows(
        client: TestClient, stack: Stack) -> None:
    # The finding: one row of a million columns was accepted after 16 s and 900 MB.
    columns = stack.settings.max_upload_columns + 1
    header = ",".join(f"c{j}" for j in range(columns - 1)) + ",y"
    content = (header + "\n" + ",".join("1" for _ in range(columns)) + "\n").encode()

    response = _upload(client, content)

    assert response.status_code == 422, response.text
    message = response.json()["message"]
    assert f"{columns} columns" in message
    assert "OPTIMLAB_MAX_UPLOAD_COLUMNS" in message


def test_an_npz_wider_than_the_column_limit_is_refused(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"max_upload_columns": 8})
    buffer = io.BytesIO()
    np.savez(buffer, X=np.ones((3, 9), dtype=np.float32), y=np.zeros(3, dtype=np.float32))
    with TestClient(create_app(settings)) as client:
        response = _upload(client, buffer.getvalue(), filename="data.npz")

    assert response.status_code == 422, response.text
    assert "OPTIMLAB_MAX_UPLOAD_COLUMNS" in response.json()["message"]


def test_a_spec_with_millions_of_values_is_refused_before_it_is_parsed(
        client: TestClient, stack: Stack) -> None:
    # The finding: a refused 5M-float parameter list still cost ~250 MB, parsed first.
    # Written compactly ("1,1,..."), 5M values are 10 MB: under the byte limit.
    values = b",".join([b"1"] * 5_000_000)
    body = (b'{"model": {"kind": "expression", "expression": "sum(x)", "parameters": {"x": ['
            + values + b']}}, "loss": "none", "optimizer": {"name": "SGD"}, "steps": 1}')
    assert len(body) < stack.settings.max_request_bytes

    response = client.post("/v1/jobs", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 413, response.text
    assert "JSON values" in response.json()["detail"]
    assert queued_messages(stack) == 0


LIMITED = {"max_steps": 50, "max_hidden_width": 32, "max_hidden_layers": 2,
           "max_array_values": 10, "max_generated_values": 1000, "max_expression_chars": 30,
           "max_expression_depth": 6, "max_exponent_bits": 64, "max_parameters": 100,
           "max_expression_nodes": 15}


def _mlp(**model: Any) -> dict[str, Any]:
    return {"model": {"kind": "mlp", **model}, "data": {"kind": "sklearn", "name": "iris"},
            "optimizer": {"name": "SGD", "lr": 0.1}, "steps": 10}


def _expression(expression: str, **changes: Any) -> dict[str, Any]:
    return {"model": {"kind": "expression", "expression": expression,
                      "parameters": {"x": 1.0}}, "loss": "none",
            "optimizer": {"name": "SGD", "lr": 0.1}, "steps": 10, **changes}


OVER_LIMITS = [
    ("steps", {**SEED_SPEC, "steps": 51}, "steps", "OPTIMLAB_MAX_STEPS"),
    ("epochs x batches", {**_mlp(hidden=[4]), "steps": None, "epochs": 10, "batch_size": 10},
     "epochs", "OPTIMLAB_MAX_STEPS"),
    ("hidden width", _mlp(hidden=[33]), "model.hidden.0", "OPTIMLAB_MAX_HIDDEN_WIDTH"),
    ("hidden layers", _mlp(hidden=[4, 4, 4]), "model.hidden", "OPTIMLAB_MAX_HIDDEN_LAYERS"),
    ("model parameters", _mlp(hidden=[32]), "model", "OPTIMLAB_MAX_PARAMETERS"),
    ("parameter values", {**_expression("sum(x)"), "model": {
        "kind": "expression", "expression": "sum(x)", "parameters": {"x": [1.0] * 11}}},
     "model.parameters", "OPTIMLAB_MAX_ARRAY_VALUES"),
    ("inline data", _expression("sum(x*u)", loss="mse", data={
        "kind": "inline", "inputs": {"u": [1.0] * 6}, "targets": [1.0] * 6}),
     "data", "OPTIMLAB_MAX_ARRAY_VALUES"),
    ("generated data", _mlp(hidden=[4]) | {"data": {"kind": "synthetic", "generator": "linear",
                                                    "samples": 501, "features": 2}},
     "data", "OPTIMLAB_MAX_GENERATED_VALUES"),
    ("expression length", _expression("x" + "+x" * 20), "model.expression",
     "OPTIMLAB_MAX_EXPRESSION_CHARS"),
    ("expression depth", _expression("-(-(-(-(-(-x)))))"), "model.expression",
     "OPTIMLAB_MAX_EXPRESSION_DEPTH"),
    ("expression nodes", _expression("(x*x+x*x)*(x*x+x*x)"), "model.expression",
     "OPTIMLAB_MAX_EXPRESSION_NODES"),
    ("exponent", _expression("x + 3**39 - 3**39"), "model.expression",
     "OPTIMLAB_MAX_EXPONENT_BITS"),
    ("schedule function", {**SEED_SPEC, "schedule": {"name": "LambdaLR",
                                                     "lr_lambda": "1 + step" + "*1" * 20}},
     "schedule", "OPTIMLAB_MAX_EXPRESSION_CHARS"),
]


@pytest.mark.parametrize(("case", "spec", "field", "words"), OVER_LIMITS,
                         ids=[c[0] for c in OVER_LIMITS])
def test_each_configured_limit_is_a_422_naming_the_field_and_the_setting(
        stack: Stack, case: str, spec: dict[str, Any], field: str, words: str) -> None:
    settings = stack.settings.model_copy(update=LIMITED)
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/jobs", json={k: v for k, v in spec.items() if v is not None})

        assert response.status_code == 422, f"{case}: {response.text[:300]}"
        message = response.json()["message"]
        assert field in message, f"{case}: {message}"
        assert words in message, f"{case}: {message}"
        assert client.get("/v1/jobs").json()["data"] == []
    assert queued_messages(stack) == 0


def test_the_same_specs_pass_under_the_default_limits(client: TestClient) -> None:
    # Each refusal above is the configured limit's doing, not a spec that is wrong anyway.
    for case, spec, _, _ in OVER_LIMITS:
        response = client.post("/v1/jobs", json={k: v for k, v in spec.items() if v is not None})
        assert response.status_code == 201, f"{case}: {response.text[:300]}"


def test_the_openapi_document_states_the_configured_limits(stack: Stack) -> None:
    settings = stack.settings.model_copy(update=LIMITED)
    with TestClient(create_app(settings)) as client:
        document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]

    steps = schemas["JobSpec"]["properties"]["steps"]["anyOf"][0]
    assert steps["maximum"] == 50
    hidden = schemas["MLPModel"]["properties"]["hidden"]
    assert hidden["maxItems"] == 2
    assert hidden["items"]["maximum"] == 32
    assert schemas["ExpressionModel"]["properties"]["expression"]["maxLength"] == 30
