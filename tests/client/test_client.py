"""optimlab.client.Client against a real embedded stack (API, worker, SQLite)."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from optimlab.client import (
    Client,
    Conflict,
    MissingDependency,
    NotFound,
    Progress,
    ServerUnavailable,
    SpecRefused,
    SweepProgress,
    WaitTimeout,
)
from optimlab.worker.spec import JobSpec
from tests.client.conftest import Server
from tests.processes import free_port
from tests.seed_table import SEED_SPEC
from tests.stacks import wait_for
from tests.tcp_proxy import tcp_proxy


def test_submit_takes_a_dict_a_jobspec_and_json_and_yaml_files(
        client: Client, tmp_path: Path) -> None:
    spec = {**SEED_SPEC, "name": "forms", "optimizer": {"name": "SGD", "lr": 0.02}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    (tmp_path / "spec.yml").write_text(yaml.safe_dump(spec))

    jobs = [client.submit(spec), client.submit(JobSpec.model_validate(spec)),
            client.submit(tmp_path / "spec.json"), client.submit(str(tmp_path / "spec.yaml")),
            client.submit(tmp_path / "spec.yml")]

    assert len({job["id"] for job in jobs}) == 5
    assert all(job["spec"] == jobs[0]["spec"] for job in jobs)
    assert jobs[0]["spec"]["optimizer"] == {"name": "SGD", "lr": 0.02}


def test_a_refused_spec_raises_spec_refused_naming_the_field(client: Client) -> None:
    spec = {**SEED_SPEC, "optimizer": {"name": "SGD", "lr": 0.01, "momentun": 0.9}}

    with pytest.raises(SpecRefused) as refused:
        client.submit(spec)

    assert refused.value.status == 422
    assert refused.value.message.startswith("optimizer.momentun: SGD has no keyword")
    assert refused.value.fields == ["optimizer.momentun"]
    assert refused.value.detail[0]["loc"] == ["body", "optimizer", "momentun"]


def test_a_spec_file_that_is_not_a_spec_is_refused_before_sending(
        client: Client, tmp_path: Path) -> None:
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "spec.txt").write_text("{}")

    with pytest.raises(ValueError, match=r"list\.yaml: a spec is a mapping"):
        client.submit(tmp_path / "list.yaml")
    with pytest.raises(ValueError, match=r"\.json, \.yaml or \.yml"):
        client.submit(tmp_path / "spec.txt")


def test_wait_follows_the_event_stream_and_reports_progress(server: Server) -> None:
    seen: list[Progress] = []
    # Long enough to span several of the worker's 0.2 s flushes: the stream sees it running
    # (a job that runs between two of the stream's polls is seen queued, then finished).
    steps = 30_000
    with tcp_proxy(server.url) as watched, Client(watched.url) as client:
        job = client.submit({**SEED_SPEC, "steps": steps})
        done = client.wait(job["id"], progress=seen.append)
        requests = sorted((r.method, r.path) for r in watched.requests())

    assert done["status"] == "succeeded"
    last = seen[-1]
    assert (last.job_id, last.step, last.steps, last.status) == (job["id"], steps, steps,
                                                                  "succeeded")
    assert last.loss == done["summary"]["final_loss"]
    reported = [p.step for p in seen]
    assert reported == sorted(reported)
    assert {p.status for p in seen} >= {"running", "succeeded"}
    # driven by the stream: one request for the events, one for the finished job, no polling
    path = f"/v1/jobs/{job['id']}"
    assert requests == sorted([("POST", "/v1/jobs"), ("GET", f"{path}/events"), ("GET", path)])


def test_wait_gives_up_after_its_timeout(client: Client,
                                         long_job: dict[str, Any]) -> None:
    with pytest.raises(WaitTimeout):
        client.wait(long_job["id"], timeout=1.0)

    assert client.job(long_job["id"])["status"] in ("queued", "running")  # it goes on


def test_job_and_its_errors(client: Client, seed_job: dict[str, Any]) -> None:
    job = client.job(seed_job["id"])
    assert job["status"] == "succeeded"
    assert job["summary"]["steps_done"] == 20

    with pytest.raises(NotFound):
        client.job(uuid.uuid4())
    with pytest.raises(SpecRefused, match="job_id"):
        client.job("not-an-id")


def test_jobs_iterates_every_page_with_the_filters(client: Client) -> None:
    tag = f"paged-{uuid.uuid4().hex[:8]}"
    ids = {client.submit({**SEED_SPEC, "tags": [tag]})["id"] for _ in range(5)}
    client.submit({**SEED_SPEC, "tags": [f"other-{tag}"]})

    listed = [job["id"] for job in client.jobs(tag=tag, page_size=2)]
    capped = [job["id"] for job in client.jobs(tag=tag, page_size=2, limit=3)]
    by_loss = list(client.jobs(tag=tag, sort="final_loss", optimizer="SGD"))

    assert len(listed) == 5
    assert set(listed) == ids
    assert capped == listed[:3]
    assert {job["id"] for job in by_loss} == ids
    with pytest.raises(SpecRefused, match="sort: cannot sort by 'no_such_field'"):
        next(client.jobs(sort="no_such_field"))


def test_history_as_lists_numpy_and_pandas(client: Client, seed_job: dict[str, Any]) -> None:
    url = f"{client.base_url}/v1/jobs/{seed_job['id']}/metrics"
    window: dict[str, Any] = {"max_points": 8, "from_step": 2, "to_step": 17,
                              "smoothing": 0.5}
    query = {"names": "loss,param.x", **window}
    api = {s["name"]: s for s in httpx.get(url, params=query).json()["series"]}

    lists = client.history(seed_job["id"], ["loss", "param.x"], **window)
    arrays = client.history(seed_job["id"], ["loss", "param.x"], as_="numpy", **window)
    frame = client.history(seed_job["id"], ["loss", "param.x"], as_="pandas", **window)
    everything = client.history(seed_job["id"])

    assert list(lists) == ["loss", "param.x"]
    for name in ("loss", "param.x"):
        assert lists[name] == {k: v for k, v in api[name].items() if k != "name"}
        assert arrays[name]["steps"].dtype == np.int64
        assert arrays[name]["steps"].tolist() == api[name]["steps"]
        assert arrays[name]["values"].tolist() == api[name]["values"]
        assert arrays[name]["smoothed"].tolist() == api[name]["smoothed"]
        column = frame[name].dropna()
        assert column.index.tolist() == api[name]["steps"]
        assert column.tolist() == api[name]["values"]
        assert frame[f"{name}_smoothed"].dropna().tolist() == api[name]["smoothed"]
    assert type(frame).__module__.startswith("pandas")  # (pandas has no type stubs here)
    assert type(frame).__name__ == "DataFrame"
    assert frame.index.name == "step"
    assert lists["loss"]["downsampled"]["points_in_range"] == 16
    assert everything["loss"]["steps"] == list(range(20))
    assert {"loss", "lr", "param.x"} <= set(everything)


def test_history_as_pandas_without_pandas_says_what_to_install(
        client: Client, seed_job: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError

    with pytest.raises(MissingDependency, match=r"optimlab\[pandas\]"):
        client.history(seed_job["id"], as_="pandas")


def test_compare_and_its_plot(client: Client, seed_job: dict[str, Any]) -> None:
    momentum = client.submit({**SEED_SPEC, "optimizer": {"name": "SGD", "lr": 0.01,
                                                         "momentum": 0.9}})
    client.wait(momentum["id"], timeout=120)
    ids = [seed_job["id"], momentum["id"]]

    comparison = client.compare(ids, metric="loss", rank_by="best_loss", max_points=10)
    png = client.compare_plot(ids, metric="loss")

    assert comparison["metric"] == "loss"
    assert comparison["rank_by"] == "best_loss"
    assert {row["id"] for row in comparison["ranking"]} == set(ids)
    differs = {job["id"]: job["differs"] for job in comparison["jobs"]}
    assert differs[momentum["id"]] == {"optimizer.momentum": 0.9}
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(NotFound):
        client.compare([seed_job["id"], str(uuid.uuid4())])


def test_sweep_from_a_yaml_file_whose_base_is_a_spec_file(client: Client,
                                                          tmp_path: Path) -> None:
    (tmp_path / "seed.json").write_text(json.dumps(SEED_SPEC))
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump({
        "name": "client sweep", "base": "seed.json",
        "axes": {"optimizer.lr": [0.005, 0.01], "optimizer.momentum": [0.0, 0.5]}}))
    seen: list[SweepProgress] = []

    sweep = client.sweep(tmp_path / "sweep.yaml")
    done = client.wait_sweep(sweep["id"], progress=seen.append, timeout=120,
                             rank_by="best_loss")
    status = client.sweep_status(sweep["id"], limit=2)

    assert sweep["size"] == 4
    assert done["counts"]["succeeded"] == 4
    assert done["rank_by"] == "best_loss"
    assert len(done["leaderboard"]) == 4
    assert seen[-1].finished == seen[-1].size == 4
    assert [p.finished for p in seen] == sorted(p.finished for p in seen)
    assert len(status["leaderboard"]) == 2
    with pytest.raises(SpecRefused, match="lr"):
        client.sweep({"base": SEED_SPEC, "axes": {"optimizer.lr": [0.01, -1.0]}})


ROSENBROCK: dict[str, Any] = {
    "model": {"kind": "expression", "expression": "(1 - x)**2 + 100*(y - x**2)**2",
              "parameters": {"x": -1.5, "y": 2.0}},
    "loss": "none", "optimizer": {"name": "SGD", "lr": 0.001}, "steps": 3000}


def test_events_resume_after_dropped_connections_with_each_point_once(
        server: Server, client: Client) -> None:
    # 3,000 steps of 7 series that never settle: a stream of about five metrics events.
    job = client.wait(client.submit(ROSENBROCK)["id"], timeout=120)
    stored = client.history(job["id"])
    size = len(httpx.get(f"{server.url}/v1/jobs/{job['id']}/events", timeout=30).content)

    # The first connection is cut inside the first metrics event (no id received yet),
    # the next two after at least one whole event each: they resume with Last-Event-ID.
    cuts = [size // 10, size * 45 // 100, size * 30 // 100]
    with tcp_proxy(server.url, cuts=cuts) as cutting, Client(cutting.url) as flaky:
        events = list(flaky.events(job["id"]))
        asked = [r for r in cutting.requests() if r.path.endswith("/events")]

    assert cutting.cut_connections == 3
    assert len(asked) == 4
    assert sum("last-event-id" in r.headers for r in asked) == 2
    assert events[-1].event == "end"
    assert events[-1].data == {"job_id": job["id"], "status": "succeeded"}
    received: dict[str, list[tuple[int, float | None]]] = {}
    for step, name, value in (p for e in events for p in e.points()):
        received.setdefault(name, []).append((step, value))
    assert set(received) == set(stored)
    assert len(received) == 8  # the engine's 7 series and the worker's wall_time
    assert "wall_time" in received
    for name, points in received.items():
        # every step once (wall_time: each stored batch's last step once)
        steps = stored[name]["steps"] if name == "wall_time" else list(range(3000))
        assert [s for s, _ in points] == steps, name
        assert [v for _, v in points] == stored[name]["values"]
    assert [e.event for e in events].count("status") == 1  # repeats on reconnect dropped


def test_events_resume_from_a_given_last_event_id(client: Client,
                                                  seed_job: dict[str, Any]) -> None:
    first = list(client.events(seed_job["id"]))
    cursor = next(e.id for e in first if e.event == "metrics")
    later = list(client.events(seed_job["id"], last_event_id="1:9"))

    assert cursor == "1:19"  # the job's 20 steps fit one event
    assert [p for e in later for p in e.points()] == [
        p for e in first for p in e.points() if p[0] >= 10]
    with pytest.raises(NotFound):
        next(client.events(uuid.uuid4()))


def test_upload_a_csv_and_train_on_it(client: Client, tmp_path: Path) -> None:
    data = tmp_path / "line.csv"
    data.write_text("u,y\n" + "".join(f"{u},{2 * u + 1}\n" for u in range(8)))

    dataset = client.upload(data, target="y", name="a line")
    job = client.submit({"model": {"kind": "linear"},
                         "data": {"kind": "upload", "dataset_id": dataset["id"]},
                         "optimizer": {"name": "SGD", "lr": 0.01}, "steps": 5})
    done = client.wait(job["id"], timeout=120)

    assert (dataset["name"], dataset["rows"], dataset["features"]) == ("a line", 8, 1)
    assert done["status"] == "succeeded"
    other = tmp_path / "other.csv"
    other.write_text("u,y\n1,2\n2,3\n")
    with pytest.raises(SpecRefused, match="target"):
        client.upload(other, target="no_such_column")


def test_cancel_a_running_job_then_conflict(client: Client,
                                            long_job: dict[str, Any]) -> None:
    wait_for(lambda: client.job(long_job["id"])["status"] == "running", timeout=60,
             interval=0.1, what="the job to run")

    cancelled = client.cancel(long_job["id"])
    with pytest.raises(Conflict):
        client.cancel(long_job["id"])

    assert cancelled["status"] == "cancelled"
    assert client.wait(long_job["id"], timeout=60)["summary"]["outcome"] == "cancelled"


def test_an_unreachable_server_raises_server_unavailable() -> None:
    with Client(f"http://127.0.0.1:{free_port()}", timeout=2) as nowhere:
        with pytest.raises(ServerUnavailable, match="cannot reach"):
            nowhere.job(uuid.uuid4())
        with pytest.raises(ServerUnavailable):
            nowhere.wait(uuid.uuid4())


def test_the_api_key_goes_as_a_bearer_token(server: Server, seed_job: dict[str, Any]) -> None:
    with tcp_proxy(server.url) as watched, Client(watched.url, api_key="k-123") as client:
        client.job(seed_job["id"])
        list(client.events(seed_job["id"]))
        headers = [r.headers for r in watched.requests()]

    assert [h.get("authorization") for h in headers] == ["Bearer k-123"] * 2
