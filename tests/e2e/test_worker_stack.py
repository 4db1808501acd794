"""The API with separate Celery worker processes: folder broker + SQLite, and Redis + PostgreSQL.

Besides the seed table through a real worker, these are the failure stories of long
jobs: a worker stopped mid-job hands the job back, a worker killed mid-job has its
job recovered by another worker, and neither leaves duplicate rows.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from optimlab.service.db import workers
from optimlab.service.db.models import MetricChunk
from optimlab.worker.sql_sink import WALL_TIME
from tests.conftest import Stack
from tests.processes import optimlab, stop
from tests.seed_table import SEED_SPEC, assert_matches_seed_table
from tests.stacks import wait_for

# Long enough to interrupt (seconds on this machine), short enough to finish afterwards.
# Several seconds of training (~0.45 ms a step here): a worker stopped, killed or cut off
# after the first stored batch leaves most of it to do; the tests that use it train it
# twice (the worker, then the comparison), so it is no longer than that needs.
MEDIUM_SPEC: dict[str, Any] = {**SEED_SPEC, "name": "medium", "steps": 15_000}
SERIES_PER_STEP = 6  # loss, lr, grad_norm, update_norm, param_norm, param.x
# (and the worker's wall_time: a point per stored batch, at its last step)


def start_worker(stack: Stack, db: Engine, log: Path) -> subprocess.Popen[bytes]:
    before = _worker_names(db)
    process = optimlab("worker", "--gpus", "none", env=stack.env(), log=log)

    def registered() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"worker exited with {process.returncode}:\n"
                                 f"{log.read_text()[-3000:]}")
        return bool(_worker_names(db) - before)

    wait_for(registered, timeout=90, interval=0.1, what="the worker to consume")
    return process


def _worker_names(db: Engine) -> set[str]:
    from datetime import timedelta

    with db.connect() as conn:
        return {w.name for w in workers.live_workers(conn, within=timedelta(minutes=5))}


def wait_status(client: TestClient, job_id: str, *statuses: str,
                timeout: float = 60) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in statuses else None

    return wait_for(reached, timeout=timeout, interval=0.05,
                    what=f"job {job_id} to be {'/'.join(statuses)}")


def rows(db: Engine, job_id: str) -> int:
    """The engine's points stored for the job (the worker's wall_time aside)."""
    import uuid

    query = select(func.sum(MetricChunk.count)).where(MetricChunk.job_id == uuid.UUID(job_id),
                                                      MetricChunk.name != WALL_TIME)
    with db.connect() as conn:
        return int(conn.scalar(query) or 0)


@pytest.mark.timeout(180)
def test_the_seed_table_through_a_real_worker(stack: Stack, db: Engine,
                                              client: TestClient, tmp_path: Path) -> None:
    worker = start_worker(stack, db, tmp_path / "worker.log")
    try:
        job = client.post("/v1/jobs", json={**SEED_SPEC, "name": "seed example"}).json()
        done = wait_status(client, job["id"], "succeeded", "failed")
        history = client.get(f"/v1/jobs/{job['id']}/metrics",
                             params={"names": "param.x,loss"}).json()
    finally:
        stop(worker)

    assert done["status"] == "succeeded", done["error"]
    x, loss = history["series"]
    assert_matches_seed_table(x["values"], loss["values"])
    assert done["summary"]["steps_done"] == 20


@pytest.mark.timeout(240)
def test_a_stopped_worker_hands_its_job_to_the_next(stack: Stack, db: Engine,
                                                    client: TestClient, tmp_path: Path) -> None:
    first = start_worker(stack, db, tmp_path / "first.log")
    job = client.post("/v1/jobs", json=MEDIUM_SPEC).json()
    wait_status(client, job["id"], "running")
    wait_for(lambda: rows(db, job["id"]) > 0, timeout=30, what="first metrics")

    seconds = stop(first, signal.SIGTERM)
    handed_back = client.get(f"/v1/jobs/{job['id']}").json()
    second = start_worker(stack, db, tmp_path / "second.log")
    try:
        done = wait_status(client, job["id"], "succeeded", "failed", timeout=120)
    finally:
        stop(second)

    assert seconds < 10, f"warm shutdown took {seconds:.1f} s"
    assert handed_back["status"] == "queued"
    assert done["status"] == "succeeded", done["error"]
    assert done["attempt"] == 2
    assert rows(db, job["id"]) == SERIES_PER_STEP * MEDIUM_SPEC["steps"]


@pytest.mark.timeout(240)
def test_a_killed_workers_job_is_recovered_by_another(stack: Stack, db: Engine,
                                                      client: TestClient, tmp_path: Path) -> None:
    first = start_worker(stack, db, tmp_path / "first.log")
    second = None
    job = client.post("/v1/jobs", json=MEDIUM_SPEC).json()
    wait_status(client, job["id"], "running")
    try:
        stop(first, signal.SIGKILL)  # no hand-back: the job is left "running"
        left = client.get(f"/v1/jobs/{job['id']}").json()
        killed_at = time.monotonic()
        second = start_worker(stack, db, tmp_path / "second.log")
        rerun = wait_status(client, job["id"], "succeeded", "failed", timeout=150)
        recovered_after = time.monotonic() - killed_at
    finally:
        if second is not None:
            stop(second)

    assert left["status"] == "running"
    assert rerun["status"] == "succeeded", rerun["error"]
    assert rerun["attempt"] == 2
    assert recovered_after > stack.settings.stale_after_seconds
    assert rows(db, job["id"]) == SERIES_PER_STEP * MEDIUM_SPEC["steps"]
