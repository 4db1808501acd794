"""GET /v1/jobs/{id}/events and /v1/sweeps/{id}/events, on both stacks, served by uvicorn.

Points are written as a worker writes them (batches of whole steps, each with the job's
progress, fenced by the attempt) while a client reads the stream; no worker runs.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from optimlab.service.api.main import create_app
from optimlab.service.db import jobs, metrics, sweeps
from optimlab.service.jobs import events as stream_module
from optimlab.service.jobs.events import EventStream
from tests.conftest import Stack
from tests.seed_table import SEED_SPEC
from tests.sse import (
    Event,
    Point,
    assert_each_once,
    last_id,
    live_server,
    points_of,
    read_events,
    stored,
    stream,
)

NAMES = ("loss", "lr", "param.x")


class NoBroker:
    def dispatch(self, job_id: str, queue: str) -> None:
        pass

    def dispatch_fused(self, job_ids: list[str], queue: str) -> None:
        pass

    def ping(self, timeout: float = 2.0) -> None:
        pass


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    # The stack's 3 s without a heartbeat would end a cancelled job's stream in a slow test.
    settings = stack.settings.model_copy(update={"stale_after_seconds": 60.0})
    with live_server(create_app(settings, dispatcher=NoBroker())) as url, \
            httpx.Client(base_url=url, timeout=30) as client:
        yield client


def new_job(db: Engine, sweep_id: uuid.UUID | None = None) -> uuid.UUID:
    with db.begin() as conn:
        return jobs.insert_job(conn, name="streamed", spec=SEED_SPEC, queue="cpu",
                               sweep_id=sweep_id).id


def claim(db: Engine, job_id: uuid.UUID) -> jobs.Claim:
    stale_before = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=60)
    with db.begin() as conn:
        claimed = jobs.claim_job(conn, job_id, worker="test", stale_before=stale_before,
                                 max_attempts=5)
    assert claimed is not None
    return claimed


def value(claimed: jobs.Claim, step: int, name: str) -> float:
    if name == "param.x" and step % 97 == 13:
        return math.nan if step % 2 else math.inf
    return claimed.attempt * 1000 + step + len(name) / 10


def write_batch(db: Engine, claimed: jobs.Claim, steps: Sequence[int]) -> list[Point]:
    """One batch as the worker's sink writes it: every series of its steps, and the progress."""
    points = [(step, name, value(claimed, step, name)) for step in steps for name in NAMES]
    with db.begin() as conn:
        assert jobs.lock_for_write(conn, claimed) is not None
        metrics.write_points(conn, claimed.job_id, points)
        jobs.save_progress(conn, claimed, {"steps_done": steps[-1] + 1})
    return [(step, name, stored(v)) for step, name, v in points]


def finish(db: Engine, claimed: jobs.Claim, status: str = "succeeded") -> None:
    with db.begin() as conn:
        jobs.finish_job(conn, claimed, status=status, summary={"final": True})


@pytest.mark.timeout(120)
def test_a_running_job_sends_every_point_once_and_resumes_after_a_disconnect(
        db: Engine, http: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_module, "MAX_POINTS", 60)  # a batch of 150 points: 3 events
    job_id = new_job(db)
    claimed = claim(db, job_id)
    written: list[Point] = []
    disconnected = False

    def run() -> None:
        for start in range(0, 1000, 50):
            if start == 500:  # the rest is written while the client is away
                deadline = time.monotonic() + 30
                while not disconnected and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert disconnected
            written.extend(write_batch(db, claimed, range(start, start + 50)))
            time.sleep(0.03)
        finish(db, claimed)

    with ThreadPoolExecutor(1) as pool:
        worker = pool.submit(run)
        first: list[Event] = []
        with stream(http, f"/v1/jobs/{job_id}/events") as response:
            for event in read_events(response):
                first.append(event)
                if event.event == "metrics" and event.points()[-1][0] >= 300:
                    break
        disconnected = True
        resumed_from = last_id(first)
        with stream(http, f"/v1/jobs/{job_id}/events", last_event_id=resumed_from) as response:
            second = list(read_events(response))
        worker.result()

    assert first[0] == Event("status", {"job_id": str(job_id), "status": "running",
                                        "attempt": 1, "summary": first[0].data["summary"],
                                        "error": None}, None)
    assert second[0].event == "status"  # each connection starts with the job's state
    assert_each_once(points_of(first) + points_of(second), written)
    # events hold whole steps, at most MAX_POINTS points, and their ids count the steps
    for event in [e for e in first + second if e.event == "metrics"]:
        steps = Counter(step for step, _, _ in event.points())
        assert set(steps.values()) == {len(NAMES)}
        assert len(event.points()) <= 60
        assert event.id == f"1:{max(steps)}"
    assert int(resumed_from.split(":")[1]) < 500  # it left midway
    assert second[-2] == Event(
        "status", {"job_id": str(job_id), "status": "succeeded", "attempt": 1,
                   "summary": {"final": True}, "error": None}, None)
    assert second[-1] == Event("end", {"job_id": str(job_id), "status": "succeeded"}, "1:999")


@pytest.mark.timeout(120)
def test_a_new_run_resets_the_stream(db: Engine, http: httpx.Client) -> None:
    job_id = new_job(db)
    first_run = claim(db, job_id)
    write_batch(db, first_run, range(100))
    seen: list[Event] = []
    second_run: jobs.Claim | None = None
    written: list[Point] = []
    with stream(http, f"/v1/jobs/{job_id}/events") as response:
        for event in read_events(response):
            seen.append(event)
            if event.event == "metrics" and event.id == "1:99":
                # the worker is lost; another run starts over from step 0
                with db.begin() as conn:
                    job = jobs.get_job(conn, job_id)
                    assert job is not None
                    assert jobs.requeue_job(conn, job)
                second_run = claim(db, job_id)
                written = write_batch(db, second_run, range(30))
                finish(db, second_run)
    assert second_run is not None
    assert second_run.attempt == 2

    reset = next(i for i, e in enumerate(seen) if e.event == "reset")
    assert seen[reset] == Event("reset", {"job_id": str(job_id), "attempt": 2}, "2:-1")
    assert all(e.data["attempt"] == 1 for e in seen[:reset] if e.event == "metrics")
    assert_each_once(points_of(seen[reset:]), written)
    assert seen[-1] == Event("end", {"job_id": str(job_id), "status": "succeeded"}, "2:29")

    # a client that held the first run's points is told to drop them, then gets the second's
    with stream(http, f"/v1/jobs/{job_id}/events", last_event_id="1:99") as response:
        again = list(read_events(response))
    assert [e.event for e in again] == ["reset", "metrics", "status", "end"]
    assert_each_once(points_of(again), written)
    # one that held nothing of it needs no reset; one that holds part of the second run
    # gets the rest
    with stream(http, f"/v1/jobs/{job_id}/events", last_event_id="1:-1") as response:
        assert [e.event for e in read_events(response)] == ["metrics", "status", "end"]
    with stream(http, f"/v1/jobs/{job_id}/events", last_event_id="2:9") as response:
        tail = list(read_events(response))
    assert_each_once(points_of(tail), [p for p in written if p[0] > 9])


@pytest.mark.timeout(120)
def test_a_cancelled_run_is_followed_until_it_stops_writing(db: Engine,
                                                            http: httpx.Client) -> None:
    job_id = new_job(db)
    claimed = claim(db, job_id)
    written = write_batch(db, claimed, range(50))
    seen: list[Event] = []
    with stream(http, f"/v1/jobs/{job_id}/events") as response:
        for event in read_events(response):
            seen.append(event)
            if event.event == "metrics" and event.id == "1:49":
                with db.begin() as conn:
                    assert jobs.cancel_job(conn, job_id)
            if event.event == "status" and event.data["status"] == "cancelled" and \
                    event.data["summary"] == {"steps_done": 50}:
                time.sleep(1)  # several polls: a stream that ends now misses what follows
                # the run writes its last batch before it sees the cancellation, then stops
                written += write_batch(db, claimed, range(50, 80))
                finish(db, claimed, status="cancelled")

    assert_each_once(points_of(seen), written)
    assert [e.data["status"] for e in seen if e.event == "status"] == \
        ["running", "cancelled", "cancelled"]
    assert seen[-2].data["summary"] == {"final": True}  # after the last points
    assert seen[-1] == Event("end", {"job_id": str(job_id), "status": "cancelled"}, "1:79")


@pytest.mark.timeout(120)
def test_a_sweep_streams_its_jobs_points_once_and_resumes(db: Engine,
                                                          http: httpx.Client) -> None:
    with db.begin() as conn:
        sweep = sweeps.insert_sweep(conn, name="pair", request={}, size=3, tags=[])
    a, b, never = (new_job(db, sweep.id) for _ in range(3))
    outsider = new_job(db)
    runs = {job_id: claim(db, job_id) for job_id in (a, b, outsider)}
    with db.begin() as conn:
        assert jobs.cancel_job(conn, never)  # cancelled while queued: it never runs
    written: dict[uuid.UUID, list[Point]] = {a: [], b: []}
    disconnected = False

    def run() -> None:
        for start in range(0, 600, 30):
            if start == 300:
                deadline = time.monotonic() + 30
                while not disconnected and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert disconnected
            for job_id in (a, b):
                if job_id == b and start >= 450:
                    continue  # b ends earlier
                written[job_id] += write_batch(db, runs[job_id], range(start, start + 30))
            write_batch(db, runs[outsider], range(start, start + 30))
            if start == 420:
                finish(db, runs[b], status="failed")
            time.sleep(0.03)
        finish(db, runs[a])

    with ThreadPoolExecutor(1) as pool:
        worker = pool.submit(run)
        first: list[Event] = []
        cancelled = Event("status", {"job_id": str(never), "status": "cancelled",
                                     "attempt": 0, "summary": None, "error": None}, None)
        with stream(http, f"/v1/sweeps/{sweep.id}/events") as response:
            for event in read_events(response):
                first.append(event)
                # The cancelled job's status ends the first poll, after the others' points:
                # more than 600 of them when the stream starts late (a loaded machine).
                if len(points_of(first)) > 600 and cancelled in first:
                    break
        disconnected = True
        resumed_from = last_id(first)
        with stream(http, f"/v1/sweeps/{sweep.id}/events",
                    last_event_id=resumed_from) as response:
            second = list(read_events(response))
        worker.result()

    assert resumed_from.startswith("s.")
    # the running jobs' states first; a finished job's after its points (none here)
    assert [(e.event, e.data["job_id"]) for e in first[:2]] == \
        [("status", str(a)), ("status", str(b))]
    assert cancelled in first
    everything = first + second
    assert {e.data["job_id"] for e in everything if e.event != "end"} == \
        {str(a), str(b), str(never)}
    for job_id in (a, b):
        assert_each_once(points_of(everything, job_id), written[job_id])
    final = {e.data["job_id"]: e.data["status"] for e in second if e.event == "status"}
    assert final[str(a)] == "succeeded"
    assert final[str(b)] == "failed"
    assert second[-1].event == "end"
    assert second[-1].data == {"sweep_id": str(sweep.id), "jobs": 3}

    # the last id resumes after everything: states only, then the end
    with stream(http, f"/v1/sweeps/{sweep.id}/events", last_event_id=second[-1].id) as response:
        after_end = list(read_events(response))
    assert [e.event for e in after_end] == ["status", "status", "status", "end"]


@pytest.mark.timeout(60)
def test_a_client_that_leaves_stops_the_polling(db: Engine, http: httpx.Client,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    polls: list[float] = []
    read_states = EventStream._read_states

    def counted(self: EventStream, conn: Any) -> Any:
        polls.append(time.monotonic())
        return read_states(self, conn)

    monkeypatch.setattr(EventStream, "_read_states", counted)
    job_id = new_job(db)
    claim(db, job_id)  # running, and it never ends
    with stream(http, f"/v1/jobs/{job_id}/events") as response:
        received = read_events(response)  # kept: dropping it would close the connection
        assert next(received).event == "status"
        time.sleep(1)
    assert len(polls) >= 3  # it was polling
    time.sleep(0.5)
    left = len(polls)
    time.sleep(1.5)
    assert len(polls) == left, "the stream went on polling after its client left"


def test_unknown_ids_are_404_and_a_foreign_last_event_id_is_422(db: Engine,
                                                               client: TestClient) -> None:
    assert client.get(f"/v1/jobs/{uuid.uuid4()}/events").status_code == 404
    response = client.get(f"/v1/sweeps/{uuid.uuid4()}/events")
    assert response.status_code == 404
    assert "not found" in response.json()["detail"]
    assert client.get("/v1/jobs/not-a-uuid/events").status_code == 422

    job_id = new_job(db)
    claimed = claim(db, job_id)
    write_batch(db, claimed, range(10))
    with db.begin() as conn:
        sweep = sweeps.insert_sweep(conn, name="s", request={}, size=1, tags=[])
        jobs.insert_job(conn, name="in sweep", spec=SEED_SPEC, queue="cpu", sweep_id=sweep.id)
    url = f"/v1/jobs/{job_id}/events"
    for bad in ("garbage", "1", "1:x", "-1:3", "1:-2", "2:0", "1:10", "1:99999999999999999999",
                "s.AAAA"):
        response = client.get(url, headers={"Last-Event-ID": bad})
        assert response.status_code == 422, (bad, response.text)
        body = response.json()
        assert body["detail"][0]["loc"] == ["header", "Last-Event-ID"]
        assert "Last-Event-ID" in body["message"], body
    response = client.get(url, params={"last_event_id": "9:9"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "last_event_id"]

    sweep_url = f"/v1/sweeps/{sweep.id}/events"
    foreign = stream_module.SweepCursor([job_id])  # a stream of other jobs
    foreign.set(job_id, stream_module.Cursor(1, 5))
    for bad in ("1:5", "s.!!", "s.AAAA", foreign.text()):
        response = client.get(sweep_url, headers={"Last-Event-ID": bad})
        assert response.status_code == 422, (bad, response.text)
        assert "is not an event id of this sweep's stream" in response.json()["message"]


def test_a_finished_jobs_stream_sends_its_history_and_ends(db: Engine,
                                                          client: TestClient) -> None:
    job_id = new_job(db)
    claimed = claim(db, job_id)
    written = write_batch(db, claimed, range(40))
    finish(db, claimed)

    # a finished job's stream ends by itself: the buffering TestClient can read it
    response = client.get(f"/v1/jobs/{job_id}/events", params={"last_event_id": "1:19"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = list(read_events(response))
    # a finished job's status comes after its last points
    assert [e.event for e in events] == ["metrics", "status", "end"]
    assert_each_once(points_of(events), [p for p in written if p[0] >= 20])
    assert events[0].data["series"][0]["name"] == "loss"



@pytest.mark.timeout(60)
def test_a_cancelled_job_whose_worker_was_lost_ends_once_its_heartbeat_is_stale(
        db: Engine, client: TestClient, stack: Stack) -> None:
    job_id = new_job(db)
    claimed = claim(db, job_id)
    written = write_batch(db, claimed, range(20))
    with db.begin() as conn:
        assert jobs.cancel_job(conn, job_id)  # and no run will ever clear the heartbeat

    started = time.monotonic()
    response = client.get(f"/v1/jobs/{job_id}/events")  # buffered: returns when it ends
    waited = time.monotonic() - started

    events = list(read_events(response))
    # cancelled, but its run might still write: the status first, the end once it cannot
    assert [e.event for e in events] == ["status", "metrics", "end"]
    assert events[0].data["status"] == "cancelled"
    assert_each_once(points_of(events), written)
    assert events[-1] == Event("end", {"job_id": str(job_id), "status": "cancelled"}, "1:19")
    assert stack.settings.stale_after_seconds - 1 < waited < stack.settings.stale_after_seconds + 5
