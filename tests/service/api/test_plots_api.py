"""The plot endpoints on both stacks, over histories written straight into the store."""

from __future__ import annotations

import math
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from optimlab.service.db import jobs, metrics, sweeps
from optimlab.service.db.models import Job
from optimlab.service.jobs.callers import LOCAL
from optimlab.service.jobs.plots import job_history
from tests.seed_table import SEED_SPEC
from tests.service.plots.images import png_size, svg_texts

ROSENBROCK: dict[str, Any] = {
    "model": {"kind": "expression", "expression": "(1 - x)**2 + 100*(y - x**2)**2",
              "parameters": {"x": -1.5, "y": [2.0]}},
    "loss": "none", "optimizer": {"name": "SGD", "lr": 0.001}, "steps": 50}
MEDIA = {"svg": "image/svg+xml", "png": "image/png"}


def store(db: Engine, spec: dict[str, Any], series: dict[str, list[float]], *,
          name: str = "", summary: dict[str, Any] | None = None,
          sweep_id: uuid.UUID | None = None, point: dict[str, Any] | None = None) -> str:
    with db.begin() as conn:
        job = jobs.insert_job(conn, name=name, spec=spec, queue="cpu", sweep_id=sweep_id,
                              sweep_point=point)
        for key, values in series.items():
            metrics.write_points(conn, job.id, [(i, key, v) for i, v in enumerate(values)])
        if summary is not None:
            conn.execute(update(Job).where(Job.id == job.id).values(summary=summary))
    return str(job.id)


def descent(steps: int, rate: float = 0.9) -> list[float]:
    return [10.0 * rate**i for i in range(steps)]


def image(client: TestClient, url: str, fmt: str, **params: Any) -> bytes:
    response = client.get(url.format(fmt=fmt), params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == MEDIA[fmt]
    return bytes(response.content)


def rosenbrock_path(steps: int = 50) -> dict[str, list[float]]:
    xs = [-1.5 + 2.5 * (i + 1) / steps for i in range(steps)]
    ys = [2.0 - (i + 1) / steps for i in range(steps)]
    return {"loss": [(1 - x) ** 2 + 100 * (y - x**2) ** 2 for x, y in zip(xs, ys, strict=True)],
            "param.x": xs, "param.y": ys}


def test_a_job_plot_is_valid_svg_and_png_with_its_series_and_lr(client: TestClient,
                                                                  db: Engine) -> None:
    job_id = store(db, SEED_SPEC, {"loss": descent(40),
                                   "lr": [0.1 * 0.5 ** (i // 10) for i in range(40)],
                                   "val_loss": [v * 1.1 for v in descent(40)]},
                   name="seed run")
    url = f"/v1/jobs/{job_id}/plot.{{fmt}}"
    texts = svg_texts(image(client, url, "svg", metrics="loss,val_loss"))
    assert {"seed run", "loss", "val_loss", "lr (right axis)", "step"} <= set(texts)
    assert png_size(image(client, url, "png")) == (880, 528)


def test_a_diverged_history_with_nan_and_inf_is_drawn(client: TestClient,
                                                       db: Engine) -> None:
    losses = [1.0, 3.0, 30.0, 1e6, math.inf, math.nan]
    job_id = store(db, SEED_SPEC, {"loss": losses, "lr": [0.5] * len(losses)},
                   summary={"outcome": "diverged", "diverged_at": 4})
    url = f"/v1/jobs/{job_id}/plot.{{fmt}}"
    texts = svg_texts(image(client, url, "svg"))
    assert "diverged at step 4" in texts
    assert "lr (right axis)" not in texts  # a constant lr has no axis of its own
    assert png_size(image(client, url, "png"))


def test_a_long_history_is_read_as_buckets(client: TestClient, db: Engine) -> None:
    job_id = store(db, SEED_SPEC, {"loss": descent(5_000, 0.999)})
    history = job_history(db=db, caller=LOCAL, job_id=uuid.UUID(job_id), names=["loss"],
                          max_points=100)
    assert len(history.starts) == 100
    assert history.bucket_width == 50
    assert history.series["loss"].low[0] == pytest.approx(10.0 * 0.999**49)
    assert history.series["loss"].high[0] == 10.0
    svg_texts(image(client, f"/v1/jobs/{job_id}/plot.{{fmt}}", "svg", max_points=100))


def test_unknown_jobs_formats_and_series_are_refused(client: TestClient,
                                                     db: Engine) -> None:
    missing = uuid.uuid4()
    for url in (f"/v1/jobs/{missing}/plot.svg", f"/v1/jobs/{missing}/landscape.png"):
        assert client.get(url).status_code == 404
    known = store(db, SEED_SPEC, {"loss": [1.0]})
    response = client.get("/v1/compare/plot.svg", params={"jobs": f"{known},{missing}"})
    assert response.status_code == 404
    assert str(missing) in response.json()["detail"]
    assert known not in response.json()["detail"]
    assert client.get(f"/v1/jobs/{known}/plot.gif").status_code == 422
    response = client.get(f"/v1/jobs/{known}/plot.svg", params={"metrics": " , "})
    assert response.status_code == 422
    assert "metrics" in response.json()["message"]
    assert client.get("/v1/compare/plot.png", params={"jobs": "nope"}).status_code == 422


def test_a_comparison_is_labelled_by_what_differs(client: TestClient, db: Engine) -> None:
    fast = store(db, {**SEED_SPEC, "optimizer": {"name": "SGD", "lr": 0.1}},
                 {"loss": descent(30, 0.8)})
    slow = store(db, {**SEED_SPEC, "optimizer": {"name": "SGD", "lr": 0.01}},
                 {"loss": descent(30, 0.95)})
    adam = [store(db, {**SEED_SPEC, "optimizer": {"name": "Adam", "lr": 0.01}, "seed": s},
                  {"loss": descent(30, 0.9 + 0.01 * s)}) for s in (1, 2)]
    url = "/v1/compare/plot.{fmt}"
    ids = ",".join([fast, slow, *adam])
    texts = svg_texts(image(client, url, "svg", jobs=ids))
    assert "optimizer.name=SGD, optimizer.lr=0.1" in texts
    assert "optimizer.name=SGD, optimizer.lr=0.01" in texts
    assert "optimizer.name=Adam, optimizer.lr=0.01 (2 seeds)" in texts
    assert png_size(image(client, url, "png", jobs=ids, band="std"))


def test_a_landscape_draws_the_objective_and_the_path(client: TestClient,
                                                      db: Engine) -> None:
    job_id = store(db, ROSENBROCK, rosenbrock_path(), name="sgd on rosenbrock")
    url = f"/v1/jobs/{job_id}/landscape.{{fmt}}"
    texts = svg_texts(image(client, url, "svg", resolution=40))
    assert {"sgd on rosenbrock", "SGD lr=0.001", "start", "end", "x", "y", "objective"} <= \
        set(texts)
    assert png_size(image(client, url, "png"))


@pytest.mark.parametrize(("spec", "reason"), [
    (SEED_SPEC, "exactly two parameters"),
    ({**ROSENBROCK, "model": {**ROSENBROCK["model"], "parameters": {"x": [1.0, 2.0],
                                                                     "y": 0.0}}},
     "x (2 numbers)"),
    ({**ROSENBROCK, "loss": "mse", "data": {"kind": "inline", "targets": [0.0]}},
     "loss 'mse'"),
    ({**ROSENBROCK, "model": {"kind": "mlp"}, "data": {"kind": "sklearn", "name": "iris"},
      "loss": "cross_entropy"}, "'mlp'"),
])
def test_a_landscape_of_another_model_is_refused_with_the_reason(
        client: TestClient, db: Engine, spec: dict[str, Any], reason: str) -> None:
    job_id = store(db, spec, {"loss": [1.0]})
    response = client.get(f"/v1/jobs/{job_id}/landscape.png")
    assert response.status_code == 422
    assert reason in response.json()["message"]
    assert "no landscape" in response.json()["message"]


def test_compare_overlays_paths_of_one_objective_only(client: TestClient,
                                                      db: Engine) -> None:
    sgd = store(db, ROSENBROCK, rosenbrock_path())
    adam = store(db, {**ROSENBROCK, "optimizer": {"name": "Adam", "lr": 0.02}},
                 rosenbrock_path(20))
    url = "/v1/compare/landscape.{fmt}"
    texts = svg_texts(image(client, url, "svg", jobs=f"{sgd},{adam}", resolution=30))
    assert "optimizer.name=SGD, optimizer.lr=0.001" in texts
    assert "optimizer.name=Adam, optimizer.lr=0.02" in texts
    assert png_size(image(client, url, "png", jobs=f"{sgd},{adam}", resolution=30))
    other = store(db, {**ROSENBROCK, "model": {**ROSENBROCK["model"],
                                               "expression": "x**2 + y**2"}}, {})
    response = client.get("/v1/compare/landscape.png", params={"jobs": f"{sgd},{other}"})
    assert response.status_code == 422
    assert "another objective" in response.json()["message"]


def test_a_sweep_plot_draws_a_summary_figure_against_an_axis(client: TestClient,
                                                            db: Engine) -> None:
    with db.begin() as conn:
        sweep = sweeps.insert_sweep(conn, name="lr grid", request={}, size=6, tags=[])
    for name in ("SGD", "Adam"):
        for lr in (0.001, 0.01, 0.1):
            final = None if (name, lr) == ("SGD", 0.1) else lr * 10
            store(db, {**SEED_SPEC, "optimizer": {"name": name, "lr": lr}},
                  {}, sweep_id=sweep.id, point={"optimizer.name": name, "optimizer.lr": lr},
                  summary={"final_loss": final, "best_loss": lr, "outcome": "completed"})
    url = f"/v1/sweeps/{sweep.id}/plot.{{fmt}}"
    texts = svg_texts(image(client, url, "svg"))
    assert {"lr grid: final_loss against optimizer.lr", "optimizer.name=SGD",
            "optimizer.name=Adam", "no value (diverged or not finished)"} <= set(texts)
    texts = svg_texts(image(client, url, "svg", metric="best_loss", x="optimizer.name"))
    assert "lr grid: best_loss against optimizer.name" in texts
    assert png_size(image(client, url, "png"))

    assert client.get(f"/v1/sweeps/{uuid.uuid4()}/plot.svg").status_code == 404
    for params, field in (({"metric": "outcome"}, "metric"), ({"metric": "bogus"}, "metric"),
                          ({"x": "optimizer.momentum"}, "x")):
        response = client.get(url.format(fmt="svg"), params=params)
        assert response.status_code == 422, params
        assert response.json()["detail"][0]["loc"] == ["query", field]


def test_a_job_without_points_yet_is_drawn_empty(client: TestClient, db: Engine) -> None:
    queued = store(db, SEED_SPEC, {})
    texts = svg_texts(image(client, f"/v1/jobs/{queued}/plot.{{fmt}}", "svg"))
    assert "no finite values recorded yet" in texts
    assert "no points: loss" in " ".join(texts)
    texts = svg_texts(image(client, "/v1/compare/plot.{fmt}", "svg", jobs=queued))
    assert "no finite loss values recorded yet" in texts
    waiting = store(db, ROSENBROCK, {})
    texts = svg_texts(image(client, f"/v1/jobs/{waiting}/landscape.{{fmt}}", "svg",
                            resolution=20))
    assert "start" in texts  # the path is its initial point alone
