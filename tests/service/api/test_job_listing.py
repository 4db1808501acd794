"""GET /v1/jobs: filters, sorting by summary figures, paging (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from optimlab.service.db import jobs
from optimlab.service.db.models import Job, utcnow
from tests.seed_table import SEED_SPEC


def stored(db: Engine, *, name: str = "", tags: tuple[str, ...] = (),
           optimizer: str = "SGD", summary: dict[str, Any] | None = None,
           age: float = 0.0) -> str:
    spec = {**SEED_SPEC, "name": name, "tags": list(tags),
            "optimizer": {"name": optimizer, "lr": 0.01}}
    with db.begin() as conn:
        job = jobs.insert_job(conn, name=name, spec=spec, queue="cpu")
        conn.execute(update(Job).where(Job.id == job.id).values(
            summary=summary, created_at=utcnow() - timedelta(seconds=age)))
    return str(job.id)


def ids(client: TestClient, **params: Any) -> list[str]:
    response = client.get("/v1/jobs", params=params)
    assert response.status_code == 200, response.text
    return [job["id"] for job in response.json()["data"]]


def test_filters_combine(client: TestClient, db: Engine) -> None:
    a = stored(db, name="lr sweep 1", tags=("seed", "sgd"), age=30)
    b = stored(db, name="lr sweep 2", tags=("seed",), optimizer="Adam", age=20)
    c = stored(db, name="rosenbrock", tags=("sgd",), age=10)

    assert ids(client, tag="seed") == [b, a]
    assert ids(client, tag="sgd", name="sweep") == [a]
    assert ids(client, optimizer="Adam") == [b]
    assert ids(client, name="ROSEN") == [c]
    assert ids(client, name="%") == []  # a literal percent sign, not a wildcard
    assert ids(client, tag="nope") == []
    first = client.get(f"/v1/jobs/{a}").json()
    assert first["tags"] == ["seed", "sgd"]


def test_created_range(client: TestClient, db: Engine) -> None:
    old = stored(db, age=3600)
    new = stored(db, age=0)
    middle = (utcnow() - timedelta(minutes=30)).isoformat() + "Z"

    assert ids(client, created_after=middle) == [new]
    assert ids(client, created_before=middle) == [old]


def test_sort_by_a_summary_figure_with_missing_ones_last(client: TestClient,
                                                        db: Engine) -> None:
    worst = stored(db, summary={"best_loss": 3.0, "evaluation": {"val_accuracy": 0.5}})
    best = stored(db, summary={"best_loss": 0.5, "evaluation": {"val_accuracy": 0.9}})
    middle = stored(db, summary={"best_loss": 1.0, "evaluation": {"val_accuracy": 0.7}})
    unknown = stored(db, summary=None)

    assert ids(client, sort="best_loss") == [best, middle, worst, unknown]
    assert ids(client, sort="-best_loss") == [worst, middle, best, unknown]
    assert ids(client, sort="-evaluation.val_accuracy") == [best, middle, worst, unknown]


def test_sorted_pages_cover_every_job_once(client: TestClient, db: Engine) -> None:
    created = [stored(db, summary={"final_loss": float(i % 4)}) for i in range(9)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"sort": "final_loss", "limit": 4}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/jobs", params=params).json()
        seen += [job["id"] for job in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert sorted(seen) == sorted(created)
    losses = [client.get(f"/v1/jobs/{i}").json()["summary"]["final_loss"] for i in seen]
    assert losses == sorted(losses)


def test_bad_sort_and_sweep_filters_are_422(client: TestClient) -> None:
    for params, field in (({"sort": "loss_of_hope"}, "sort"), ({"sweep": "x"}, "sweep"),
                          ({"created_after": "yesterday"}, "created_after")):
        response = client.get("/v1/jobs", params=params)
        assert response.status_code == 422, params
        assert field in response.json()["message"]
    assert client.get("/v1/jobs", params={"sweep": str(uuid.uuid4())}).json()["data"] == []
