"""DELETE, rerun, PATCH, series and logs of /v1/jobs/{id}, on both stacks (no worker runs)."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from optimlab.service.db import job_logs, metrics
from optimlab.service.db.job_logs import LogLine
from optimlab.service.db.models import JobLog, JobTag, MetricChunk
from tests.conftest import Stack
from tests.seed_table import SEED_SPEC
from tests.service.api.test_jobs_api import submit
from tests.stacks import queued_messages


def count(db: Engine, table: Any, job_id: str) -> int:
    with db.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)
                               .where(table.job_id == uuid.UUID(job_id))) or 0)


def add_lines(db: Engine, job_id: str, lines: list[tuple[int, int, str]]) -> None:
    """(attempt, level, message) lines, a second apart from noon."""
    with db.begin() as conn:
        job_logs.write_lines(conn, [
            (uuid.UUID(job_id), attempt, LogLine(datetime(2026, 1, 1, 12, 0, k), level,
                                                 "tests", message))
            for k, (attempt, level, message) in enumerate(lines)])


def test_a_finished_job_is_deleted_with_its_points_tags_and_lines(client: TestClient,
                                                                  db: Engine) -> None:
    job = submit(client, tags=["keep-me"])
    with db.begin() as conn:
        metrics.write_points(conn, uuid.UUID(job["id"]), [(0, "loss", 1.0), (0, "lr", 0.1)])
    add_lines(db, job["id"], [(1, logging.WARNING, "w")])
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200

    deleted = client.delete(f"/v1/jobs/{job['id']}")

    assert deleted.status_code == 204
    assert deleted.content == b""
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 404
    for table in (MetricChunk, JobTag, JobLog):
        assert count(db, table, job["id"]) == 0
    assert client.get("/v1/jobs", params={"tag": "keep-me"}).json()["data"] == []


def test_a_queued_job_is_not_deleted_until_cancelled(client: TestClient) -> None:
    job = submit(client)

    refused = client.delete(f"/v1/jobs/{job['id']}")

    assert refused.status_code == 409
    assert "queued" in refused.json()["detail"]
    assert "cancel it first" in refused.json()["detail"]
    assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "queued"
    assert client.delete(f"/v1/jobs/{uuid.uuid4()}").status_code == 404


def test_rerun_submits_the_same_spec_as_a_new_job(client: TestClient, stack: Stack) -> None:
    job = submit(client, name="seed", tags=["a"])
    client.post(f"/v1/jobs/{job['id']}/cancel")

    response = client.post(f"/v1/jobs/{job['id']}/rerun")

    assert response.status_code == 201
    again = response.json()
    assert again["id"] != job["id"]
    assert response.headers["location"] == f"/v1/jobs/{again['id']}"
    assert again["spec"] == job["spec"]
    assert (again["name"], again["tags"], again["status"]) == ("seed", ["a"], "queued")
    assert again["sweep_id"] is None
    assert queued_messages(stack) == 2
    assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"
    assert client.post(f"/v1/jobs/{uuid.uuid4()}/rerun").status_code == 404


def test_a_sweep_jobs_rerun_is_in_no_sweep(client: TestClient) -> None:
    sweep = client.post("/v1/sweeps", json={"base": SEED_SPEC, "fuse": False,
                                            "axes": {"optimizer.lr": [0.01, 0.02]}}).json()
    first = client.get("/v1/jobs", params={"sweep": sweep["id"]}).json()["data"][0]

    again = client.post(f"/v1/jobs/{first['id']}/rerun").json()

    assert again["sweep_id"] is None
    assert again["sweep_point"] is None
    assert again["spec"] == first["spec"]
    assert len(client.get("/v1/jobs", params={"sweep": sweep["id"]}).json()["data"]) == 2


def test_patch_renames_and_retags_in_the_row_the_spec_and_the_tag_index(
        client: TestClient) -> None:
    job = submit(client, name="before", tags=["old", "kept"])

    renamed = client.patch(f"/v1/jobs/{job['id']}", json={"name": "after"})
    retagged = client.patch(f"/v1/jobs/{job['id']}", json={"tags": ["new", "kept", "new"]})

    assert renamed.status_code == 200
    assert (renamed.json()["name"], renamed.json()["tags"]) == ("after", ["old", "kept"])
    body = retagged.json()
    assert (body["name"], body["tags"]) == ("after", ["new", "kept"])
    assert (body["spec"]["name"], body["spec"]["tags"]) == ("after", ["new", "kept"])
    assert client.get(f"/v1/jobs/{job['id']}").json() == body

    def tagged(tag: str) -> list[str]:
        return [j["id"] for j in client.get("/v1/jobs", params={"tag": tag}).json()["data"]]

    assert (tagged("new"), tagged("kept"), tagged("old")) == ([job["id"]], [job["id"]], [])
    assert client.patch(f"/v1/jobs/{job['id']}", json={}).json() == body
    assert client.patch(f"/v1/jobs/{job['id']}", json={"tags": []}).json()["tags"] == []
    assert tagged("new") == []


@pytest.mark.parametrize(("body", "field"), [
    ({"tags": ["fine", "not fine!"]}, "tags.1"), ({"tags": ["x"] * 21}, "tags"),
    ({"name": "n" * 201}, "name"), ({"name": None}, "name"), ({"tags": None}, "tags"),
    ({"colour": "red"}, "colour"), ({"name": 3}, "name")])
def test_patch_refuses_a_bad_field_naming_it(client: TestClient, body: dict[str, Any],
                                             field: str) -> None:
    job = submit(client, name="same", tags=["same"])

    response = client.patch(f"/v1/jobs/{job['id']}", json=body)

    assert response.status_code == 422
    assert response.json()["message"].startswith(f"{field}: ")
    unchanged = client.get(f"/v1/jobs/{job['id']}").json()
    assert (unchanged["name"], unchanged["tags"]) == ("same", ["same"])


def test_patch_of_an_unknown_job_is_404(client: TestClient) -> None:
    assert client.patch(f"/v1/jobs/{uuid.uuid4()}", json={"name": "x"}).status_code == 404


def test_series_lists_every_stored_series_loss_and_lr_first(client: TestClient,
                                                             db: Engine) -> None:
    job_id = submit(client)["id"]
    assert client.get(f"/v1/jobs/{job_id}/series").json() == {"job_id": job_id, "series": []}
    with db.begin() as conn:  # two batches, as a worker writes them
        for first in (0, 10):
            metrics.write_columns(conn, uuid.UUID(job_id), {
                name: (range(first, first + 10), [1.0] * 10)
                for name in ("param.x", "lr", "grad_norm", "loss")})
            metrics.write_columns(conn, uuid.UUID(job_id), {
                "val_loss": ([first + 9], [0.5]), "wall_time": ([first + 9], [first / 10])})

    series = client.get(f"/v1/jobs/{job_id}/series").json()["series"]

    assert [s["name"] for s in series] == ["loss", "lr", "grad_norm", "param.x", "val_loss",
                                           "wall_time"]
    assert series[0] == {"name": "loss", "points": 20, "first_step": 0, "last_step": 19}
    assert series[-1] == {"name": "wall_time", "points": 2, "first_step": 9, "last_step": 19}
    assert client.get(f"/v1/jobs/{uuid.uuid4()}/series").status_code == 404


def test_logs_are_oldest_first_and_filtered(client: TestClient, db: Engine) -> None:
    job_id = submit(client)["id"]
    add_lines(db, job_id, [(1, logging.INFO, "run 1 starts"),
                           (1, logging.WARNING, "a torch warning"),
                           (2, logging.INFO, "run 2 starts"),
                           (2, logging.ERROR, "it failed"), (2, 25, "between levels")])

    def messages(**params: Any) -> list[str]:
        response = client.get(f"/v1/jobs/{job_id}/logs", params=params)
        assert response.status_code == 200, response.text
        return [line["message"] for line in response.json()["lines"]]

    body = client.get(f"/v1/jobs/{job_id}/logs").json()
    assert body["job_id"] == job_id
    assert body["lines"][1] == {"attempt": 1, "at": "2026-01-01T12:00:01Z", "level": "WARNING",
                                "logger": "tests", "message": "a torch warning"}
    assert [line["level"] for line in body["lines"]] == ["INFO", "WARNING", "INFO", "ERROR",
                                                         "Level 25"]
    assert messages(attempt=2) == ["run 2 starts", "it failed", "between levels"]
    assert messages(min_level="WARNING") == ["a torch warning", "it failed"]
    assert messages(attempt=2, min_level="INFO", limit=2) == ["run 2 starts", "it failed"]
    assert messages(attempt=3) == []


@pytest.mark.parametrize(("params", "field"), [
    ({"min_level": "LOUD"}, "min_level"), ({"limit": 0}, "limit"), ({"attempt": 0}, "attempt")])
def test_logs_refuse_a_bad_filter_naming_it(client: TestClient, params: dict[str, Any],
                                            field: str) -> None:
    job_id = submit(client)["id"]

    response = client.get(f"/v1/jobs/{job_id}/logs", params=params)

    assert response.status_code == 422
    assert response.json()["message"].startswith(f"{field}: ")
    assert client.get(f"/v1/jobs/{uuid.uuid4()}/logs").status_code == 404
