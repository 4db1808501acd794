"""With the API's database away: a JSON 503 (and Retry-After) on every route, nothing
half-stored, and the API recovers by itself when the database returns.

PostgreSQL is cut for real by a TCP proxy between the API and the server; SQLite by a
database file that cannot be opened (a folder in its place), which is then migrated.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from optimlab.migrations import upgrade
from optimlab.service.api.main import create_app
from optimlab.service.settings import Settings
from tests.conftest import Stack
from tests.seed_table import SEED_SPEC
from tests.tcp_proxy import TcpProxy, tcp_proxy

# Routes whose answer needs the database: each must say 503 while it is away.
NEEDS_DATABASE = [
    ("GET", "/readyz"), ("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("GET", "/v1/jobs/{job}"),
    ("PATCH", "/v1/jobs/{job}"), ("DELETE", "/v1/jobs/{job}"), ("POST", "/v1/jobs/{job}/cancel"),
    ("POST", "/v1/jobs/{job}/rerun"), ("GET", "/v1/jobs/{job}/metrics"),
    ("GET", "/v1/jobs/{job}/metrics.csv"), ("GET", "/v1/jobs/{job}/series"),
    ("GET", "/v1/jobs/{job}/logs"), ("GET", "/v1/jobs/{job}/events"),
    ("GET", "/v1/jobs/{job}/plot.svg"), ("GET", "/v1/sweeps"), ("GET", "/v1/datasets"),
    ("GET", "/v1/compare?jobs={job}"),
]


def request(client: TestClient, method: str, path: str, job_id: str) -> httpx.Response:
    body: dict[str, Any] | None = None
    if method == "POST" and path == "/v1/jobs":
        body = SEED_SPEC
    elif method == "PATCH":
        body = {"name": "renamed"}
    response: httpx.Response = client.request(method, path.replace("{job}", job_id), json=body)
    return response


def every_route(client: TestClient) -> list[tuple[str, str]]:
    """Each operation of the OpenAPI document, its path parameters filled in."""
    fill = {"job_id": "{job}", "fmt": "svg"}
    routes = []
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        concrete = re.sub(r"\{(\w+)\}", lambda m: fill.get(m[1], str(uuid.uuid4())), path)
        routes += [(method.upper(), concrete) for method in operations]
    return routes


def assert_unavailable(response: httpx.Response, what: str) -> None:
    assert response.status_code == 503, f"{what}: {response.status_code} {response.text[:300]}"
    assert response.headers["content-type"].startswith("application/json"), what
    assert int(response.headers["retry-after"]) > 0, what
    detail = response.json().get("detail")
    if what != "GET /readyz":
        assert isinstance(detail, str), (what, detail)
        assert "database is unavailable" in detail, (what, detail)


def check_outage(client: TestClient, job_id: str) -> None:
    for method, path in NEEDS_DATABASE:
        assert_unavailable(request(client, method, path, job_id), f"{method} {path}")
    for method, path in every_route(client):
        response = request(client, method, path, job_id)
        # Routes that need no database (docs, the catalog) answer; a bad request a 4xx.
        assert response.status_code < 500 or response.status_code == 503, (
            f"{method} {path}: {response.status_code} {response.text[:300]}")
        if response.status_code == 503:
            assert_unavailable(response, f"{method} {path}")


def check_recovery(client: TestClient, job_id: str) -> None:
    assert client.get("/readyz").status_code == 200
    listed = client.get("/v1/jobs").json()["data"]
    # Only the job posted before the outage: no POST answered 503 left a job behind.
    assert [job["id"] for job in listed] == [job_id]
    assert client.post("/v1/jobs", json=SEED_SPEC).status_code == 201


@pytest.fixture
def postgres_cut(stack: Stack) -> Iterator[tuple[Settings, TcpProxy]]:
    if stack.kind != "postgres":
        pytest.skip("the proxied database is PostgreSQL")  # the SQLite case is below
    url = make_url(stack.settings.database)
    with tcp_proxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        through = url.set(host="127.0.0.1", port=proxy.port)
        yield stack.settings.model_copy(
            update={"database_url": through.render_as_string(hide_password=False)}), proxy


@pytest.mark.timeout(120)
@pytest.mark.parametrize("stack", ["postgres"], indirect=True)
def test_postgresql_cut_answers_json_503_everywhere_and_recovers(
        postgres_cut: tuple[Settings, TcpProxy]) -> None:
    settings, proxy = postgres_cut
    with TestClient(create_app(settings)) as client:
        posted = client.post("/v1/jobs", json=SEED_SPEC)
        assert posted.status_code == 201, posted.text
        job_id = posted.json()["id"]

        proxy.cut()  # the pool's connections die, and new ones are refused
        check_outage(client, job_id)
        proxy.restore()

        check_recovery(client, job_id)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_an_unopenable_sqlite_file_answers_json_503_and_recovers(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"data_dir": stack.settings.data_dir / "away"})
    database = settings.data_dir / "optimlab.db"
    database.mkdir(parents=True)  # a folder where the file should be: cannot be opened
    with TestClient(create_app(settings)) as client:
        check_outage(client, str(uuid.uuid4()))
        listed = client.get("/v1/jobs")

        shutil.rmtree(database)
        upgrade(settings.database)  # the database is back, empty
        assert client.get("/readyz").status_code == 200
        posted = client.post("/v1/jobs", json=SEED_SPEC)
        assert posted.status_code == 201, posted.text
        check_recovery(client, posted.json()["id"])

    assert listed.status_code == 503
