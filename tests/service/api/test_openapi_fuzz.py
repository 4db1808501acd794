"""schemathesis over the API's own OpenAPI document, in-process, on PostgreSQL + Redis.

Every operation gets a bounded number of generated requests (``EXAMPLES``), valid and
invalid ones: no answer is a 5xx, every status is documented, and every body matches its
documented schema. Requests go through the real ASGI app and its real database; jobs it
submits are queued (no worker runs), so nothing trains.

Streams (``text/event-stream``) are read up to a few events (``max_stream_events``): a
queued job's stream never ends by itself.

The app requires keys; ``api_headers`` gives the headers of every request: without a key
(every answer a documented 401, or a 4xx found before the key is asked for), and with a
valid one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from optimlab.service.api.main import create_app
from optimlab.service.db.connection import make_engine
from optimlab.service.jobs import keys
from tests.conftest import Stack
from tests.seed_table import SEED_SPEC

EXAMPLES = 12
# Refusals of schema-valid requests that no schema can state: a spec's meaning (an
# expression must parse, an optimizer keyword must exist), a file's content, an opaque
# cursor, a range whose ends depend on each other, what a stored job or sweep allows.
SEMANTIC_BODIES = {"POST /v1/jobs", "POST /v1/sweeps", "POST /v1/datasets"}
SEMANTIC_PARAMETERS = {"query.cursor", "query.to_step", "query.job_id", "query.metric",
                       "query.x", "query.jobs", "header.Last-Event-ID",
                       "query.last_event_id"}


def _semantic(case: Any, response: Any) -> bool:
    if response.status_code != 422:
        return False
    errors = response.json()["detail"]
    return all((e["loc"][0] == "body" and case.operation.label in SEMANTIC_BODIES)
               or ".".join(map(str, e["loc"][:2])) in SEMANTIC_PARAMETERS for e in errors)


def accepted_unless_semantic(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis' positive_data_acceptance (a request the schema allows is not refused),
    but for the refusals listed above, which say why in their message."""
    if _semantic(case, response):
        return None
    return positive_data_acceptance(ctx, response, case)


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, accepted_unless_semantic]


@pytest.fixture
def api_key(stack: Stack) -> str:
    db = make_engine(stack.settings.database)
    try:
        return keys.create_key(db=db, name="fuzz").key
    finally:
        db.dispose()


@pytest.fixture
def api_headers(request: pytest.FixtureRequest, api_key: str) -> dict[str, str]:
    return {} if request.param == "without key" else {"Authorization": f"Bearer {api_key}"}


@pytest.fixture
def fuzzed_app(stack: Stack, api_key: str) -> Iterator[tuple[FastAPI, TestClient]]:
    """The app, keys required, with one job of the key's owner stored (queued), so that
    some ids exist."""
    app = create_app(stack.settings.model_copy(update={"auth": "required"}))
    with TestClient(app, headers={"Authorization": f"Bearer {api_key}"}) as client:
        assert client.post("/v1/jobs", json=SEED_SPEC).status_code == 201
        yield app, client


def fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str],
         path_parameters: dict[str, Any] | None = None) -> None:
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def examples(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    examples()


@pytest.mark.parametrize("stack", ["postgres"], indirect=True)
@pytest.mark.parametrize("api_headers", ["without key", "with key"], indirect=True)
def test_every_operation_answers_as_documented(
        fuzzed_app: tuple[FastAPI, TestClient], api_headers: dict[str, str]) -> None:
    app, client = fuzzed_app
    job_id = client.get("/v1/jobs").json()["data"][0]["id"]
    config = schemathesis.Config.from_dict({"max-stream-events": 2})
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    for operation in operations:
        # Random ids (404s, mostly), then the stored job's for the routes of one job.
        known = ({"job_id": job_id} if any(p.name == "job_id" for p in operation.path_parameters)
                 else None)
        runs: list[tuple[GenerationMode, dict[str, Any] | None]] = [
            (GenerationMode.POSITIVE, None), (GenerationMode.NEGATIVE, None)]
        if known is not None:
            runs.append((GenerationMode.POSITIVE, known))
        for mode, path in runs:
            try:
                fuzz(operation, mode, api_headers, path)
            except Unsatisfiable:
                pass  # no invalid request exists (an operation without parameters)
            except (Exception, BaseExceptionGroup) as exc:  # all operations tried, all reported
                failures.append(f"{operation.label} ({mode.value}"
                                f"{', stored job' if path else ''}): {exc}")
    assert len(operations) > 25
    assert not failures, "\n\n".join(failures)
