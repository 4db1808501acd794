"""Load on one API: concurrent tiny-job POSTs and SSE followers, PostgreSQL + Redis.

``optimlab api`` (uvicorn) and one ``optimlab worker`` run as processes on a throwaway
database and their own Redis queue names. Measured in the same run:

* POSTs: requests/s of ``--jobs`` POSTs sent at once (``--followers`` of their jobs
  followed over SSE meanwhile), against the same POSTs sent one at a time (``serial``).
* Followers: seconds from a job's ``finished_at`` (the server's clock) to its ``end`` event
  at the follower, under that load, against one follower alone on an idle API.
* Drain: jobs/s from the last POST answered to the last job finished.

Every answer must be a 201 and every follower must see its ``end``; the script says so
otherwise. Nothing here asserts on a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx
import redis
import support
from sqlalchemy import Engine, func, select

from optimlab.migrations import upgrade
from optimlab.service.db.connection import make_engine
from optimlab.service.db.models import Job, Worker

SEED: dict[str, Any] = {  # the seed problem: x**2 towards 16
    "model": {"kind": "expression", "expression": "x**2", "parameters": {"x": [1.0]}},
    "data": {"kind": "inline", "targets": [16.0]}, "loss": "mse",
    "optimizer": {"name": "SGD", "lr": 0.01}, "device": "cpu"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=support.positive, default=500)
    parser.add_argument("--followers", type=support.positive, default=50)
    parser.add_argument("--steps", type=support.positive, default=5)
    parser.add_argument("--serial", type=support.positive, default=50,
                        help="POSTs sent one at a time for the peer rate")
    parser.add_argument("--repeats", type=support.positive, default=3)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    spec = {**SEED, "steps": args.steps}
    print(support.load_line())
    with support.postgres_url(args.postgres) as database, stack(database, args.redis) as (
            url, db):
        serial, alone, loaded = [], [], []
        for _ in range(args.repeats):
            serial.append(post_serially(url, spec, args.serial))
            alone.append(follow_alone(url, db, spec))
            loaded.append(asyncio.run(under_load(url, db, spec, args.jobs,
                                                 args.followers)))
        print(support.load_line())
    report(args, serial, alone, loaded)


@contextmanager
def stack(database: str, broker: str) -> Iterator[tuple[str, Engine]]:
    upgrade(database)
    prefix = f"bench-{uuid.uuid4().hex[:8]}-"
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "OPTIMLAB_DATABASE_URL": database, "OPTIMLAB_BROKER_URL": broker,
               "OPTIMLAB_QUEUE_PREFIX": prefix, "OPTIMLAB_DATA_DIR": data,
               "OPTIMLAB_FLUSH_SECONDS": "0.2"}
        port = _free_port()
        command = [sys.executable, "-m", "optimlab.service.cli"]
        logs = Path(data) / "logs"
        logs.mkdir()
        api = subprocess.Popen([*command, "api", "--port", str(port)], env=env,
                               stdout=(logs / "api").open("wb"), stderr=subprocess.STDOUT)
        worker = subprocess.Popen([*command, "worker", "--gpus", "none"], env=env,
                                  stdout=(logs / "worker").open("wb"),
                                  stderr=subprocess.STDOUT)
        db = make_engine(database)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait(lambda: _ready(url) and _workers(db) > 0, what="the API and a worker")
            yield url, db
            if "Traceback" in (logs / "api").read_text():
                print("the API logged a traceback:\n" + (logs / "api").read_text()[-3000:])
        finally:
            for process in (api, worker):
                process.terminate()
                process.wait(timeout=30)
            db.dispose()
            client = redis.Redis.from_url(broker)
            keys = list(client.scan_iter(match=f"*{prefix}*"))
            if keys:
                client.delete(*keys)


def post_serially(url: str, spec: dict[str, Any], n: int) -> float:
    """POSTs/s, one request at a time."""
    with httpx.Client(base_url=url, timeout=60) as http:
        started = time.perf_counter()
        for _ in range(n):
            _created(http.post("/v1/jobs", json=spec))
        return n / (time.perf_counter() - started)


def follow_alone(url: str, db: Engine, spec: dict[str, Any]) -> float:
    """Seconds from finished_at to the end event, one follower on an otherwise idle API."""
    _wait(lambda: _open(db) == 0, what="the serial jobs to finish")

    async def one() -> float:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            job = _created(await http.post("/v1/jobs", json=spec))
            return await _follow(http, db, job["id"])

    return asyncio.run(one())


async def under_load(url: str, db: Engine, spec: dict[str, Any], jobs: int,
                     followers: int) -> dict[str, Any]:
    _wait(lambda: _open(db) == 0, what="the jobs before to finish")
    limits = httpx.Limits(max_connections=jobs + followers, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:
        posted_at: list[float] = []

        async def post(i: int) -> float | None:
            job = _created(await http.post("/v1/jobs", json=spec))
            posted_at.append(time.perf_counter())
            return await _follow(http, db, job["id"]) if i < followers else None

        started = time.perf_counter()
        latencies = [x for x in await asyncio.gather(*(post(i) for i in range(jobs)))
                     if x is not None]
    last_post = max(posted_at)
    _wait(lambda: _open(db) == 0, what="every job to finish", timeout=600)
    drained = time.perf_counter()
    return {"posts_per_s": jobs / (last_post - started), "latencies": latencies,
            "drain_jobs_per_s": jobs / (drained - started)}


async def _follow(http: httpx.AsyncClient, db: Engine, job_id: str) -> float:
    ended = None
    async with http.stream("GET", f"/v1/jobs/{job_id}/events",
                           headers={"Accept": "text/event-stream"}) as response:
        if response.status_code != 200:
            raise SystemExit(f"a follower got {response.status_code}")
        async for line in response.aiter_lines():
            if line == "event: end":
                ended = time.time()
    if ended is None:
        raise SystemExit(f"the stream of job {job_id} closed without its end event")
    with db.connect() as conn:
        finished = conn.scalar(select(Job.finished_at).where(Job.id == uuid.UUID(job_id)))
    assert finished is not None
    return ended - finished.replace(tzinfo=UTC).timestamp()


def report(args: argparse.Namespace, serial: list[float], alone: list[float],
           loaded: list[dict[str, Any]]) -> None:
    posts = [run["posts_per_s"] for run in loaded]
    per_run = [statistics.median(run["latencies"]) for run in loaded]
    worst = [max(run["latencies"]) for run in loaded]
    drains = [run["drain_jobs_per_s"] for run in loaded]
    print(f"\n{args.jobs} jobs of {args.steps} steps, {args.followers} followers, "
          f"{args.repeats} repeats; median (min-max)\n")
    print("| what | load | median | min-max | ratio |\n|---|---|---:|---:|---:|")
    _row("POSTs/s", f"{args.serial} one at a time", serial, statistics.median(serial), "peer")
    _row("POSTs/s", f"{args.jobs} at once + {args.followers} followers", posts,
         statistics.median(serial))
    _row("follower: finished -> end (s)", "one follower, idle API", alone,
         statistics.median(alone), "peer")
    _row("follower: finished -> end (s)", "median of the followers under load", per_run,
         statistics.median(alone))
    _row("follower: finished -> end (s)", "slowest follower under load", worst,
         statistics.median(alone))
    _row("jobs/s, first POST to last job finished", f"{args.jobs} at once", drains, None)


def _row(what: str, load: str, values: list[float], peer: float | None,
         ratio: str | None = None) -> None:
    median = statistics.median(values)
    shown = ratio or (f"{median / peer:.2f}x" if peer else "–")
    print(f"| {what} | {load} | {median:.3g} | {min(values):.3g}–{max(values):.3g} | {shown} |")


def _created(response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 201:
        raise SystemExit(f"POST answered {response.status_code}: {response.text[:300]}")
    return response.json()  # type: ignore[no-any-return]


def _open(db: Engine) -> int:
    with db.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(Job)
                               .where(Job.status.in_(("queued", "running")))) or 0)


def _workers(db: Engine) -> int:
    with db.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(Worker)) or 0)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(check: Any, *, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    main()
