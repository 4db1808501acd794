"""A real worker's job followed live through GET /v1/jobs/{id}/events, with a reconnection
(one worker per stack runs the module's jobs)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from optimlab.service.api.main import create_app
from optimlab.worker.sql_sink import WALL_TIME
from tests.conftest import Stack
from tests.e2e.test_worker_stack import SERIES_PER_STEP
from tests.seed_table import SEED_SPEC
from tests.sse import (
    Event,
    Point,
    assert_each_once,
    last_id,
    live_server,
    points_of,
    read_events,
    stream,
)

STEPS = 30_000  # a few seconds of batches on this machine


def until_two_batches(http: httpx.Client, path: str) -> list[Event]:
    """The stream's events up to its second metrics batch; then the client leaves."""
    events: list[Event] = []
    with stream(http, path) as response:
        for event in read_events(response):
            events.append(event)
            if len([e for e in events if e.event == "metrics"]) == 2:
                break
    return events


@pytest.fixture
def stack(shared_worker_stack: Stack) -> Stack:
    """The module's worker runs every test's jobs (tests/e2e/conftest.py)."""
    return shared_worker_stack


def without_wall_time(points: list[Point]) -> list[Point]:
    """The engine's points: the worker's wall_time (a point per batch) streams too, and
    counts in ``assert_each_once``, but not per step."""
    return [point for point in points if point[1] != WALL_TIME]


@pytest.mark.timeout(240)
def test_a_client_that_reconnects_midway_gets_the_stored_history_once(stack: Stack) -> None:
    with live_server(create_app(stack.settings)) as url, \
            httpx.Client(base_url=url, timeout=60) as http:
        created = http.post("/v1/jobs", json={**SEED_SPEC, "name": "followed",
                                              "steps": STEPS})
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        path = f"/v1/jobs/{job_id}/events"

        first = until_two_batches(http, path)  # the client goes away mid-run
        time.sleep(0.5)  # the run goes on meanwhile
        with stream(http, path, last_event_id=last_id(first)) as response:
            second = list(read_events(response))
        history: dict[str, Any] = http.get(f"/v1/jobs/{job_id}/metrics").json()
        job: dict[str, Any] = http.get(f"/v1/jobs/{job_id}").json()

    assert job["status"] == "succeeded", job["error"]
    stored: list[Point] = [(step, series["name"], value) for series in history["series"]
                           for step, value in zip(series["steps"], series["values"],
                                                  strict=True)]
    assert len(without_wall_time(stored)) == SERIES_PER_STEP * STEPS
    left_at = int(last_id(first).split(":")[1])
    assert 0 <= left_at < STEPS - 1, "the first connection did not leave midway"
    assert first[0].event == "status"
    assert first[0].data["status"] in ("queued", "running")
    assert_each_once(points_of(first) + points_of(second), stored)
    assert second[-2].event == "status"
    assert second[-2].data["status"] == "succeeded"
    assert second[-2].data["summary"] == job["summary"]
    assert second[-1] == Event("end", {"job_id": job_id, "status": "succeeded"},
                               f"1:{STEPS - 1}")


@pytest.mark.timeout(240)
def test_a_sweeps_stream_resumed_midway_holds_each_jobs_stored_history_once(
        stack: Stack) -> None:
    with live_server(create_app(stack.settings)) as url, \
            httpx.Client(base_url=url, timeout=60) as http:
        created = http.post("/v1/sweeps", json={
            "name": "followed", "base": {**SEED_SPEC, "steps": STEPS // 3},
            "axes": {"optimizer.lr": [0.01, 0.001]}})
        assert created.status_code == 201, created.text
        sweep_id = created.json()["id"]
        path = f"/v1/sweeps/{sweep_id}/events"

        first = until_two_batches(http, path)
        time.sleep(0.5)
        with stream(http, path, last_event_id=last_id(first)) as response:
            second = list(read_events(response))
        jobs = http.get("/v1/jobs", params={"sweep": sweep_id}).json()["data"]
        histories = {job["id"]: http.get(f"/v1/jobs/{job['id']}/metrics").json()
                     for job in jobs}

    assert len(jobs) == 2
    assert {job["status"] for job in jobs} == {"succeeded"}
    for job in jobs:
        stored: list[Point] = [
            (step, series["name"], value) for series in histories[job["id"]]["series"]
            for step, value in zip(series["steps"], series["values"], strict=True)]
        assert len(without_wall_time(stored)) == SERIES_PER_STEP * STEPS // 3
        assert_each_once(points_of(first + second, job["id"]), stored)
    assert second[-1].event == "end"
    assert second[-1].data == {"sweep_id": sweep_id, "jobs": 2}
