"""A job whose worker is SIGKILLed mid-run resumes from its checkpoint, on real processes:
Celery workers on PostgreSQL + Redis (the pool child killed, or the worker's parent), and
``optimlab up`` (the pool child killed, or the whole stack killed and started again). The
new attempt starts past step 0, and the stored history equals, bit for bit, the engine's
uninterrupted run of the same spec (the worker's wall_time series aside: timing differs)."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from optimlab.service.db import job_logs, metrics, workers
from optimlab.service.db.connection import make_engine
from optimlab.worker.engine import ListSink, run_training
from optimlab.worker.spec import JobSpec
from optimlab.worker.sql_sink import WALL_TIME
from tests.conftest import Stack
from tests.e2e.test_embedded_up import Embedded, embedded, get_job, post
from tests.processes import optimlab, running, stop
from tests.stacks import wait_for

# A mini-batch MLP with dropout, momentum and a OneCycle schedule: seconds of training,
# a checkpoint every 200 steps (the service's floor lowered from 1 s for the test).
SPEC: dict[str, Any] = {
    "name": "resumed",
    "model": {"kind": "mlp", "hidden": [8], "dropout": 0.1},
    "data": {"kind": "synthetic", "generator": "blobs", "samples": 64, "features": 4,
             "classes": 3},
    "optimizer": {"name": "SGD", "lr": 0.05, "momentum": 0.9},
    "schedule": {"name": "OneCycleLR", "max_lr": 0.2},
    "batch_size": 8, "steps": 2500, "checkpoint_every": 200, "device": "cpu",
}
# Two pool children, one torch thread each: on a busy two-core machine one child with two
# threads trains ten times slower. The job runs in one of them.
CHECKPOINT_ENV = {"OPTIMLAB_CHECKPOINT_MIN_SECONDS": "0.05"}
History = dict[str, list[tuple[int, bytes]]]

__all__ = ["embedded"]  # the fixture, imported for the tests of `optimlab up` below


@pytest.fixture(scope="module")
def expected() -> History:
    """The engine's uninterrupted run, in this process, on one thread as the workers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sink = ListSink()
        run_training(JobSpec.model_validate(SPEC), sink)
    finally:
        torch.set_num_threads(threads)
    history: History = {}
    for step, name, value in sorted(sink.points):
        history.setdefault(name, []).append((step, struct.pack("<d", value)))
    return history


def stored(db: Engine, job_id: str) -> History:
    with db.connect() as conn:
        names = [n for n in metrics.series_names(conn, uuid.UUID(job_id)) if n != WALL_TIME]
        series = metrics.read_series(conn, uuid.UUID(job_id), names)
    return {s.name: [(step, struct.pack("<d", v)) for step, v in
                     zip(s.steps, s.values, strict=True)] for s in series}


def past_a_checkpoint(job: dict[str, Any]) -> bool:
    """Running, checkpointed past step 0, with points stored after the checkpoint."""
    summary = job.get("summary") or {}
    checkpoint = summary.get("checkpoint_step")
    return job["status"] == "running" and checkpoint is not None and checkpoint >= 200 and \
        summary.get("steps_done", 0) > checkpoint + 1


def pool_child(parent: int) -> psutil.Process:
    """The pool child that trains: the one using the CPU."""
    children = psutil.Process(parent).children()
    before = {c.pid: c.cpu_times().user for c in children}
    time.sleep(0.5)
    return max(children, key=lambda c: c.cpu_times().user - before[c.pid])


def assert_resumed(job: dict[str, Any], db: Engine, expected: History) -> None:
    assert job["status"] == "succeeded", job["error"]
    assert job["attempt"] == 2
    summary = job["summary"]
    assert summary["attempts"] == 2
    assert summary["resumed_from"] >= 200  # the new attempt's first step is past 0
    # what the dead attempt stored past its checkpoint (0 if killed right after one)
    assert 0 <= summary["steps_recomputed"] < SPEC["steps"]
    assert stored(db, job["id"]) == expected
    with db.connect() as conn:
        lines = job_logs.read_lines(conn, uuid.UUID(job["id"]), attempt=2, min_level=0,
                                    limit=100)
    assert any(f"resumes from the checkpoint of step {summary['resumed_from']}" in line.message
               for line in lines)


# ------------------------------------------------------------ Celery on PostgreSQL + Redis


def start_worker(stack: Stack, db: Engine, log: Path) -> subprocess.Popen[bytes]:
    with db.connect() as conn:
        before = {w.name for w in workers.live_workers(conn, within=timedelta(minutes=5))}
    process = optimlab("worker", "--gpus", "none", "--concurrency", "2",
                       env={**stack.env(), **CHECKPOINT_ENV}, log=log)

    def registered() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"worker exited:\n{log.read_text()[-3000:]}")
        with db.connect() as conn:
            live = {w.name for w in workers.live_workers(conn, within=timedelta(minutes=5))}
        return bool(live - before)

    wait_for(registered, timeout=90, interval=0.1, what="the worker to consume")
    return process


def wait_job(client: TestClient, job_id: str, check: Any, timeout: float,
             what: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        return job if check(job) else None

    return wait_for(reached, timeout=timeout, interval=0.05, what=what)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("stack", ["postgres"], indirect=True)
@pytest.mark.parametrize("victim", ["pool child", "parent"])
def test_a_sigkilled_workers_job_resumes_from_its_checkpoint_bit_for_bit(
        stack: Stack, db: Engine, client: TestClient, tmp_path: Path, victim: str,
        expected: History) -> None:
    first = start_worker(stack, db, tmp_path / "first.log")
    second = None
    try:
        job = client.post("/v1/jobs", json=SPEC).json()
        wait_job(client, job["id"], past_a_checkpoint, 120, "a checkpoint past step 0")
        if victim == "pool child":  # the parent stays and runs the job again itself
            pool_child(first.pid).kill()
        else:
            stop(first, signal.SIGKILL)
            second = start_worker(stack, db, tmp_path / "second.log")
        done = wait_job(client, job["id"], lambda j: j["status"] in ("succeeded", "failed"),
                        180, "the job to finish")
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                stop(process)

    assert_resumed(done, db, expected)


# ------------------------------------------------------------------------- optimlab up


@pytest.fixture
def up_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Embedded.start passes this process's environment on: short staleness, low floor.
    for name, value in {**CHECKPOINT_ENV, "OPTIMLAB_HEARTBEAT_SECONDS": "0.5",
                        "OPTIMLAB_STALE_AFTER_SECONDS": "3"}.items():
        monkeypatch.setenv(name, value)


def wait_up(url: str, job_id: str, check: Any, timeout: float, what: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        try:
            job = get_job(url, job_id)
        except httpx.HTTPError:
            return None
        return job if check(job) else None

    return wait_for(reached, timeout=timeout, interval=0.05, what=what)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("victim", ["pool child", "whole stack"])
@pytest.mark.usefixtures("up_env")
def test_optimlab_up_resumes_a_killed_job_from_its_checkpoint_bit_for_bit(
        embedded: Embedded, victim: str, expected: History) -> None:
    with running(embedded.start("--concurrency", "2")) as up:
        job = post(embedded.url, SPEC)
        wait_up(embedded.url, job["id"], past_a_checkpoint, 120, "a checkpoint past step 0")
        if victim == "pool child":
            worker = next(p for p in psutil.Process(up.pid).children(recursive=True)
                          if "worker" in " ".join(p.cmdline()) and len(p.children()) >= 2)
            pool_child(worker.pid).kill()
            done = wait_up(embedded.url, job["id"],
                           lambda j: j["status"] in ("succeeded", "failed"), 180, "the end")
        else:
            stop(up, signal.SIGKILL)
    if victim == "whole stack":
        with running(embedded.start("--concurrency", "2")):
            done = wait_up(embedded.url, job["id"],
                           lambda j: j["status"] in ("succeeded", "failed"), 180, "the end")

    db = make_engine(f"sqlite:///{embedded.data_dir / 'optimlab.db'}")
    try:
        assert_resumed(done, db, expected)
    finally:
        db.dispose()
    assert os.path.isdir(embedded.data_dir / "checkpoints" / job["id"])
