"""Worker-side outages on the real stack: the database cut mid-job, a pool child killed
mid-job, the broker's queue flushed with jobs waiting.

Each story ends in the same check: the job succeeded, and its stored history is the
uninterrupted run's, value for value: one point per (name, step), no gap, no duplicate.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from optimlab.service.db import metrics
from optimlab.worker.sql_sink import WALL_TIME
from tests.conftest import Stack
from tests.e2e.test_worker_stack import MEDIUM_SPEC, wait_status
from tests.processes import optimlab, stop
from tests.seed_table import SEED_SPEC
from tests.stacks import wait_for
from tests.tcp_proxy import tcp_proxy
from tests.worker.engine.histories import expected_history

# The broker's Redis database of the flush test: its own, never db 0 (other tests use it).
FLUSHED_REDIS_DB = 11


def start_worker(stack: Stack, db: Engine, log: Path,
                 **env: str) -> subprocess.Popen[bytes]:
    """``optimlab worker`` with the stack's settings and ``env`` over them; returns once it
    consumes (its row is in the workers table, read without the proxy)."""
    process = optimlab("worker", "--gpus", "none", env={**stack.env(), **env}, log=log)

    def registered() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"worker exited with {process.returncode}:\n"
                                 f"{log.read_text()[-3000:]}")
        with db.connect() as conn:
            return bool(conn.exec_driver_sql("SELECT count(*) FROM workers").scalar())

    wait_for(registered, timeout=90, interval=0.1, what="the worker to consume")
    return process


def assert_uninterrupted_history(db: Engine, job_id: str, spec: dict[str, Any]) -> None:
    """The stored series equal, bit for bit, an uninterrupted run of ``spec``."""
    expected, _ = expected_history(spec)
    with db.connect() as conn:
        stored = metrics.read_series(conn, uuid.UUID(job_id), sorted(expected))
        names = set(metrics.series_names(conn, uuid.UUID(job_id))) - {WALL_TIME}
    assert names == set(expected)
    for series in stored:
        assert series.steps == list(range(spec["steps"])), f"{series.name}: steps differ"
        assert series.values == expected[series.name], f"{series.name}: values differ"


@pytest.mark.timeout(240)
# the cut is a TCP proxy between the worker and PostgreSQL (SQLite is a file)
@pytest.mark.parametrize("stack", ["postgres"], indirect=True)
@pytest.mark.parametrize(("cut_seconds", "unstored_limit"), [
    (2.7, None),  # the blip of the issue: it used to cost an attempt
    (5.0, None),
    (60.0, 20_000),  # a small buffer: training pauses until the database is back
], ids=["2.7s", "5s", "60s"])
def test_a_database_cut_mid_job_loses_and_doubles_nothing(
        stack: Stack, db: Engine, client: TestClient, tmp_path: Path,
        cut_seconds: float, unstored_limit: int | None) -> None:
    database = make_url(stack.settings.database)
    assert database.host is not None
    assert database.port is not None
    with tcp_proxy((database.host, database.port)) as proxy:
        proxied = database.set(host="127.0.0.1", port=proxy.port)
        env = {"OPTIMLAB_DATABASE_URL": proxied.render_as_string(hide_password=False)}
        if unstored_limit is not None:
            env["OPTIMLAB_UNSTORED_POINTS_LIMIT"] = str(unstored_limit)
        worker = start_worker(stack, db, tmp_path / "worker.log", **env)
        try:
            job = client.post("/v1/jobs", json=MEDIUM_SPEC).json()
            wait_for(lambda: _stored(db, job["id"]) > 0, timeout=60,
                     what="the first stored batch")
            proxy.cut()
            time.sleep(cut_seconds)
            proxy.restore()
            done = wait_status(client, job["id"], "succeeded", "failed", timeout=150)
        finally:
            stop(worker)

    assert proxy.refused > 0, "the worker never noticed the cut"
    assert done["status"] == "succeeded", done["error"]
    assert done["attempt"] == 1
    assert_uninterrupted_history(db, job["id"], MEDIUM_SPEC)


@pytest.mark.timeout(240)
def test_a_killed_pool_childs_job_is_taken_over_at_once(stack: Stack, db: Engine,
                                                        client: TestClient,
                                                        tmp_path: Path) -> None:
    # Staleness alone would take ten minutes: only the takeover can explain a recovery.
    worker = start_worker(stack, db, tmp_path / "worker.log",
                          OPTIMLAB_STALE_AFTER_SECONDS="600")
    try:
        job = client.post("/v1/jobs", json=MEDIUM_SPEC).json()
        wait_status(client, job["id"], "running")
        wait_for(lambda: _stored(db, job["id"]) > 0, timeout=60, what="the first batch")
        (child,) = psutil.Process(worker.pid).children()
        child.send_signal(signal.SIGKILL)
        try:
            done = wait_status(client, job["id"], "succeeded", "failed", timeout=150)
        except AssertionError as exc:
            left = client.get(f"/v1/jobs/{job['id']}").json()
            log = (tmp_path / "worker.log").read_text()[-4000:]
            raise AssertionError(f"{exc}\n{left}\n{log}") from None
    finally:
        stop(worker)

    assert done["status"] == "succeeded", done["error"]
    assert done["attempt"] == 2
    assert_uninterrupted_history(db, job["id"], MEDIUM_SPEC)


@pytest.mark.timeout(180)
def test_jobs_queued_when_the_broker_is_flushed_all_finish(stack: Stack, db: Engine,
                                                          tmp_path: Path) -> None:
    if stack.kind == "postgres":  # a Redis database of this test's own, to flush
        broker = str(make_url(stack.settings.broker).set(database=str(FLUSHED_REDIS_DB)))
        stack = Stack(stack.kind, stack.settings.model_copy(update={"broker_url": broker}))
        redis.Redis.from_url(broker).flushdb()
    settings = {"OPTIMLAB_RECONCILE_SECONDS": "0.5", "OPTIMLAB_RESEND_QUEUED_AFTER_SECONDS": "1"}
    long_spec = {**MEDIUM_SPEC, "steps": 20_000}
    with TestClient(_app(stack)) as client:
        worker = start_worker(stack, db, tmp_path / "worker.log", **settings)
        try:
            running = client.post("/v1/jobs", json=long_spec).json()
            wait_status(client, running["id"], "running")
            queued = [client.post("/v1/jobs", json={**SEED_SPEC, "name": f"q{i}"}).json()
                      for i in range(4)]
            assert _broker_messages(stack) >= len(queued)
            _flush_broker(stack)
            assert _broker_messages(stack) == 0
            done = [wait_status(client, job["id"], "succeeded", "failed", timeout=90)
                    for job in [running, *queued]]
        finally:
            stop(worker)
            if stack.kind == "postgres":
                redis.Redis.from_url(stack.settings.broker).flushdb()

    assert [job["status"] for job in done] == ["succeeded"] * 5
    assert [job["attempt"] for job in done] == [1] * 5
    assert_uninterrupted_history(db, running["id"], long_spec)


def _app(stack: Stack) -> Any:
    from optimlab.service.api.main import create_app

    return create_app(stack.settings)


def _stored(db: Engine, job_id: str) -> int:
    with db.connect() as conn:
        return len(metrics.series_names(conn, uuid.UUID(job_id)))


def _broker_messages(stack: Stack) -> int:
    queue = stack.settings.queue("cpu")
    if stack.kind == "embedded":
        return len(list((stack.settings.broker_folder / "messages").glob(f"*.{queue}.msg")))
    return int(redis.Redis.from_url(stack.settings.broker).llen(queue))


def _flush_broker(stack: Stack) -> None:
    """The broker loses its queue: Redis flushed (its own database), or the folder broker's
    message files gone."""
    if stack.kind == "embedded":
        for path in (stack.settings.broker_folder / "messages").glob("*.msg"):
            path.unlink(missing_ok=True)
        return
    redis.Redis.from_url(stack.settings.broker).flushdb()
