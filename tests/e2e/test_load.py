"""Load: 500 concurrent tiny-job POSTs and 50 concurrent SSE followers against one API
process (uvicorn, `optimlab api`) and a real worker, on PostgreSQL + Redis.

No error, every job finished once (one attempt), every follower saw every point once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from optimlab.service.db.models import Job
from tests.conftest import Stack
from tests.e2e.test_worker_stack import start_worker
from tests.processes import free_port, optimlab, stop, wait_ready
from tests.seed_table import SEED_SPEC
from tests.sse import Event, Point, aread_events, assert_each_once, points_of
from tests.stacks import wait_for

JOBS = 500
FOLLOWERS = 50
TINY: dict[str, Any] = {**SEED_SPEC, "steps": 5, "device": "cpu"}


async def post_and_follow(http: httpx.AsyncClient, i: int
                          ) -> tuple[httpx.Response, list[Event] | None]:
    posted = await http.post("/v1/jobs", json={**TINY, "name": f"load {i}"})
    if i >= FOLLOWERS or posted.status_code != 201:
        return posted, None
    path = f"/v1/jobs/{posted.json()['id']}/events"
    async with http.stream("GET", path, headers={"Accept": "text/event-stream"}) as response:
        return posted, [event async for event in aread_events(response)]


async def load(url: str) -> list[tuple[httpx.Response, list[Event] | None]]:
    limits = httpx.Limits(max_connections=JOBS + FOLLOWERS, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        return await asyncio.gather(*(post_and_follow(http, i) for i in range(JOBS)))


def stored_points(url: str, job_id: str) -> list[Point]:
    history = httpx.get(f"{url}/v1/jobs/{job_id}/metrics", timeout=30).json()
    return [(step, series["name"], value) for series in history["series"]
            for step, value in zip(series["steps"], series["values"], strict=True)]


@pytest.mark.timeout(600)  # ~220 s at load average 8.6 on the 2 shared cores
@pytest.mark.parametrize("stack", ["postgres"], indirect=True)
def test_500_posts_and_50_followers_no_error_each_job_once_each_point_once(
        stack: Stack, db: Engine, tmp_path: Path) -> None:
    port = free_port()
    url, log = f"http://127.0.0.1:{port}", tmp_path / "api.log"
    api = optimlab("api", "--port", str(port), env=stack.env(), log=log)  # starts meanwhile
    worker = None
    try:
        worker = start_worker(stack, db, tmp_path / "worker.log")
        wait_ready(url, api, log)
        results = asyncio.run(load(url))
        statuses = Counter(posted.status_code for posted, _ in results)
        ids = [posted.json()["id"] for posted, _ in results if posted.status_code == 201]

        def all_over() -> Counter[str] | None:
            with db.connect() as conn:
                rows = conn.execute(select(Job.status, Job.attempt)).all()
            over = Counter(f"{status}/{attempt}" for status, attempt in rows)
            return over if sum(over.values()) == len(ids) and all(
                status not in ("queued", "running") for status, _ in rows) else None

        finished = wait_for(all_over, timeout=400, interval=1, what="every job to finish")
        followed = [(posted.json()["id"], events) for posted, events in results
                    if events is not None]
        stored = {job_id: stored_points(url, job_id) for job_id, _ in followed}
    finally:
        stop(api)
        if worker is not None:
            stop(worker)

    assert "Traceback" not in log.read_text()
    assert statuses == {201: JOBS}
    assert finished == {"succeeded/1": JOBS}  # each job ran once, and succeeded
    assert len(followed) == FOLLOWERS
    for job_id, events in followed:
        assert events[-1] == Event("end", {"job_id": job_id, "status": "succeeded"},
                                   events[-1].id)
        assert_each_once(points_of(events, job_id), stored[job_id])
