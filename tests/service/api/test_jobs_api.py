"""The /v1/jobs contract, on SQLite + folder broker and on PostgreSQL + Redis (no worker runs)."""

from __future__ import annotations

import math
import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from optimlab.service.db import metrics
from tests.conftest import Stack
from tests.seed_table import SEED_SPEC
from tests.stacks import queued_messages

JOB_FIELDS = {"id", "name", "status", "spec", "created_at", "started_at", "finished_at", "error",
              "summary"}


def submit(client: TestClient, **changes: Any) -> dict[str, Any]:
    response = client.post("/v1/jobs", json={**SEED_SPEC, **changes})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_post_stores_a_queued_job_and_sends_it_to_the_queue(client: TestClient,
                                                           stack: Stack) -> None:
    response = client.post("/v1/jobs", json={**SEED_SPEC, "name": "seed example"})

    assert response.status_code == 201
    job = response.json()
    assert set(job) >= JOB_FIELDS
    assert job["status"] == "queued"
    assert job["name"] == "seed example"
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert uuid.UUID(job["id"])
    assert job["spec"]["optimizer"] == {"name": "SGD", "lr": 0.01}
    assert job["created_at"].endswith("Z")
    assert queued_messages(stack) == 1

    fetched = client.get(f"/v1/jobs/{job['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == job


def test_unknown_job_is_404_and_a_malformed_id_is_422(client: TestClient) -> None:
    assert client.get(f"/v1/jobs/{uuid.uuid4()}").status_code == 404
    assert client.post(f"/v1/jobs/{uuid.uuid4()}/cancel").status_code == 404
    assert client.get(f"/v1/jobs/{uuid.uuid4()}/metrics").status_code == 404
    assert client.get(f"/v1/jobs/{uuid.uuid4()}/metrics.csv").status_code == 404
    response = client.get("/v1/jobs/not-a-uuid")
    assert response.status_code == 422
    assert "job_id" in response.json()["message"]


def test_list_is_newest_first_and_pages_with_a_cursor(client: TestClient) -> None:
    ids = [submit(client, name=f"job {i}")["id"] for i in range(5)]

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/jobs", params=params).json()
        assert len(page["data"]) <= 2
        seen += [job["id"] for job in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == list(reversed(ids))


def test_list_filters_by_status(client: TestClient) -> None:
    first, second = submit(client)["id"], submit(client)["id"]
    client.post(f"/v1/jobs/{first}/cancel")

    cancelled = client.get("/v1/jobs", params={"status": "cancelled"}).json()["data"]
    queued = client.get("/v1/jobs", params={"status": "queued"}).json()["data"]

    assert [job["id"] for job in cancelled] == [first]
    assert [job["id"] for job in queued] == [second]


def test_list_refuses_bad_parameters_naming_them(client: TestClient) -> None:
    for params, field in (({"status": "done"}, "status"), ({"limit": 0}, "limit"),
                          ({"limit": 5000}, "limit"), ({"cursor": "garbage!"}, "cursor")):
        response = client.get("/v1/jobs", params=params)
        assert response.status_code == 422, params
        assert field in response.json()["message"]


def test_cancel_a_queued_job_once(client: TestClient) -> None:
    job = submit(client)

    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel")
    again = client.post(f"/v1/jobs/{job['id']}/cancel")

    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    assert again.status_code == 409
    assert "cancelled" in again.json()["detail"]


def test_metrics_give_stored_series_by_name(client: TestClient, db: Engine) -> None:
    job = submit(client)
    job_id = uuid.UUID(job["id"])
    with db.begin() as conn:
        metrics.write_points(conn, job_id, [
            (0, "loss", 225.0), (0, "lr", 0.01), (0, "param.x", 1.600000023841858),
            (1, "loss", 180.6335906982422), (1, "lr", 0.01), (1, "param.x", 2.46016001701355),
            (2, "loss", math.nan), (2, "lr", 0.01),
        ])

    everything = client.get(f"/v1/jobs/{job_id}/metrics").json()
    chosen = client.get(f"/v1/jobs/{job_id}/metrics", params={"names": "param.x,loss"}).json()

    assert everything["job_id"] == str(job_id)
    assert [s["name"] for s in everything["series"]] == ["loss", "lr", "param.x"]
    loss = everything["series"][0]
    assert loss["steps"] == [0, 1, 2]
    assert loss["values"] == [225.0, 180.6335906982422, None]  # NaN is null in JSON
    assert [s["name"] for s in chosen["series"]] == ["param.x", "loss"]
    assert chosen["series"][0]["values"] == [1.600000023841858, 2.46016001701355]


def test_metrics_csv_has_the_same_points(client: TestClient, db: Engine) -> None:
    job_id = uuid.UUID(submit(client)["id"])
    with db.begin() as conn:
        metrics.write_points(conn, job_id, [(0, "loss", 225.0), (1, "loss", 0.1 + 0.2),
                                            (0, "lr", 0.01), (1, "loss2", math.nan)])

    response = client.get(f"/v1/jobs/{job_id}/metrics.csv", params={"names": "loss,loss2"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    lines = response.text.splitlines()
    assert lines == ["step,name,value", "0,loss,225.0", "1,loss,0.30000000000000004",
                     "1,loss2,nan"]


def test_metrics_of_a_job_without_points_are_empty(client: TestClient) -> None:
    job_id = submit(client)["id"]

    assert client.get(f"/v1/jobs/{job_id}/metrics").json()["series"] == []
    assert client.get(f"/v1/jobs/{job_id}/metrics.csv").text == "step,name,value\n"


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "database": "ok", "broker": "ok", "workers": 0}


def test_openapi_documents_the_job_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/cancel",
            "/v1/jobs/{job_id}/metrics", "/v1/jobs/{job_id}/metrics.csv", "/healthz",
            "/readyz"} <= set(paths)
    assert client.get("/docs").status_code == 200
