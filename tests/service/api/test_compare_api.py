"""GET /v1/compare: shared buckets, seed groups with a band, ranking, refusals (both stacks)."""

from __future__ import annotations

import math
import random
import statistics
import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from optimlab.service.db import jobs, metrics
from optimlab.service.db.models import Job
from tests.seed_table import SEED_SPEC


def stored(db: Engine, losses: list[float], *, lr: float = 0.01, seed: int = 0,
           summary: dict[str, Any] | None = None, name: str = "") -> str:
    spec = {**SEED_SPEC, "name": name, "seed": seed,
            "optimizer": {"name": "SGD", "lr": lr}}
    with db.begin() as conn:
        job = jobs.insert_job(conn, name=name, spec=spec, queue="cpu")
        conn.execute(update(Job).where(Job.id == job.id).values(summary=summary))
        metrics.write_points(conn, job.id, [(i, "loss", v) for i, v in enumerate(losses)])
    return str(job.id)


def compare(client: TestClient, ids: list[str], **params: Any) -> dict[str, Any]:
    response = client.get("/v1/compare", params={"jobs": ",".join(ids), **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bucket_means(losses: list[float], width: int, buckets: int) -> list[float | None]:
    out: list[float | None] = []
    for k in range(buckets):
        chunk = [v for v in losses[k * width:(k + 1) * width] if math.isfinite(v)]
        out.append(statistics.fmean(chunk) if chunk else None)
    return out


def close(a: list[float | None], b: list[float | None]) -> bool:
    return len(a) == len(b) and all(
        (x is None and y is None) or (x is not None and y is not None
                                      and math.isclose(x, y, rel_tol=1e-12))
        for x, y in zip(a, b, strict=True))


def test_jobs_of_different_lengths_share_buckets(client: TestClient, db: Engine) -> None:
    rng = random.Random(3)
    long = [rng.uniform(0, 10) for _ in range(1000)]
    short = [rng.uniform(0, 10) for _ in range(250)]
    short[17] = math.nan  # a non-finite point is left out of its bucket's mean
    a, b = stored(db, long, lr=0.1), stored(db, short, lr=0.2)

    body = compare(client, [a, b], max_points=100)

    assert body["bucket_width"] == 10
    assert body["steps"] == list(range(0, 1000, 10))
    by_id = {job["id"]: job for job in body["jobs"]}
    assert close(by_id[a]["values"], bucket_means(long, 10, 100))
    assert close(by_id[b]["values"], bucket_means(short, 10, 100))
    assert by_id[b]["values"][30:] == [None] * 70
    assert by_id[a]["max"][0] == max(long[:10])
    assert by_id[a]["differs"] == {"optimizer.lr": 0.1}


def test_seeds_form_one_group_with_a_band(client: TestClient, db: Engine) -> None:
    runs = {seed: [float(seed + i) for i in range(20)] for seed in (0, 1, 5)}
    grouped = [stored(db, losses, seed=seed) for seed, losses in runs.items()]
    other = stored(db, [1.0] * 20, lr=0.5)

    body = compare(client, [*grouped, other], max_points=20, band="std")

    groups = sorted(body["groups"], key=lambda g: len(g["jobs"]))
    assert [len(g["jobs"]) for g in groups] == [1, 3]
    seeds = groups[1]
    assert seeds["jobs"] == grouped
    assert seeds["seeds"] == [0, 1, 5]
    assert seeds["differs"] == {"optimizer.lr": 0.01}
    columns = list(zip(*runs.values(), strict=True))
    assert close(seeds["mean"], [statistics.fmean(c) for c in columns])
    assert close(seeds["high"], [statistics.fmean(c) + statistics.pstdev(c) for c in columns])

    minmax = compare(client, grouped, max_points=20)["groups"][0]
    assert minmax["low"] == [min(c) for c in columns]
    assert minmax["high"] == [max(c) for c in columns]


def test_ranking_sorts_the_summaries(client: TestClient, db: Engine) -> None:
    rng = random.Random(7)
    made = {stored(db, [1.0], lr=0.01 * (i + 1),
                   summary={"best_loss": rng.uniform(0, 1), "steps_per_second": rng.uniform(1, 9)})
            : None for i in range(6)}
    unfinished = stored(db, [1.0], lr=1.0, summary=None)
    ids = [*made, unfinished]

    for rank_by, key, reverse in (("best_loss", "best_loss", False),
                                  ("-steps_per_second", "steps_per_second", True)):
        ranking = compare(client, ids, rank_by=rank_by)["ranking"]
        expected = sorted(made, key=lambda i: next(
            r["summary"][key] for r in ranking if r["id"] == i), reverse=reverse)
        assert [r["id"] for r in ranking] == [*expected, unfinished]
        assert [r["rank"] for r in ranking] == list(range(1, 8))
        values = [r["value"] for r in ranking[:-1]]
        assert values == sorted(values, reverse=reverse)
        assert ranking[-1]["value"] is None


def test_unknown_ids_are_named(client: TestClient, db: Engine) -> None:
    known = stored(db, [1.0])
    missing = str(uuid.uuid4())
    response = client.get("/v1/compare", params={"jobs": f"{known},{missing}"})
    assert response.status_code == 404
    assert missing in response.json()["detail"]
    assert known not in response.json()["detail"]


def test_refusals_name_the_parameter(client: TestClient, db: Engine) -> None:
    known = stored(db, [1.0])
    cases = {"jobs": {"jobs": f"{known},not-an-id"},
             "rank_by": {"jobs": known, "rank_by": "os.system"},
             "band": {"jobs": known, "band": "wide"},
             "max_points": {"jobs": known, "max_points": 0}}
    for field, params in cases.items():
        response = client.get("/v1/compare", params=params)
        assert response.status_code == 422, response.text
        assert response.json()["message"].startswith(f"{field}:"), response.text
    response = client.get("/v1/compare", params={"jobs": " , "})
    assert response.status_code == 422
    assert "jobs" in response.json()["message"]


def test_a_metric_nobody_recorded_gives_empty_series(client: TestClient, db: Engine) -> None:
    known = stored(db, [3.0, 2.0])
    body = compare(client, [known], metric="val_accuracy")
    assert body["steps"] == []
    assert body["jobs"][0]["values"] == []
