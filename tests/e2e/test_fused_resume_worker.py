"""A fused sweep task SIGKILLed mid-run on Redis + PostgreSQL, the pool child running it or
the worker's main process (or the worker stopped, handing its jobs back), and on the
embedded stack (the whole of `optimlab up` SIGKILLed and started again): the next attempt
resumes from the group's checkpoint (its first step > 0), and every job's stored history
is the uninterrupted fused run's, bit for bit (the worker's wall_time aside)."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from optimlab.service.db import metrics
from optimlab.service.db.connection import make_engine
from optimlab.worker.checkpoints import CheckpointStore
from optimlab.worker.engine.fused.loop import run_fused
from optimlab.worker.fused_checkpoints import fused_group
from optimlab.worker.spec import JobSpec
from tests.conftest import Stack
from tests.e2e.test_embedded_up import Embedded, embedded
from tests.e2e.test_fused_sweep_worker import engine_series, finished_sweep, sweep_jobs
from tests.e2e.test_resume_worker import up_env
from tests.e2e.test_worker_stack import start_worker
from tests.processes import running, stop
from tests.seed_table import SEED_SPEC
from tests.stacks import wait_for
from tests.worker.engine.fused.fusing import CollectingSink

STEPS = 10_000
CHECKPOINT_EVERY = 1_500
__all__ = ["embedded", "up_env"]  # the fixtures, imported for the `optimlab up` test

SWEEP: dict[str, Any] = {
    "name": "killed fused sweep",
    "base": {**SEED_SPEC, "steps": STEPS, "checkpoint_every": CHECKPOINT_EVERY},
    "seeds": None, "axes": {"optimizer.lr": [0.0001, 0.0002], "optimizer.momentum": [0.0, 0.5]}}


def _stored_past(db: Engine, task: list[str], store: CheckpointStore, key: str) -> bool:
    """A checkpoint exists and every job stored points past it: a kill now loses steps."""
    steps = store.steps(key)
    if not steps:
        return False
    with db.connect() as conn:
        last = metrics.last_steps(conn, [uuid.UUID(job_id) for job_id in task])
    return all(step > steps[-1] for step in last.values())


def _pool_child(worker: Any) -> psutil.Process:
    """The worker's pool child busy training (the one that has used the most CPU)."""
    children = psutil.Process(worker.pid).children(recursive=True)
    return max(children, key=lambda child: child.cpu_times().user)


def _uninterrupted(specs: list[dict[str, Any]]) -> list[dict[str, list[float]]]:
    sink = CollectingSink(len(specs))
    run_fused([JobSpec.model_validate(spec) for spec in specs], sink)
    histories = []
    for points in sink.points:
        history: dict[str, list[float]] = {}
        for _, name, value in sorted(points):  # by step: one sort, not one per series
            history.setdefault(name, []).append(value)
        histories.append(dict(sorted(history.items())))
    return histories


def _assert_resumed(client: httpx.Client, sweep_id: str, task: list[str]) -> None:
    """Every job of the task resumed once, fused, past step 0, to the uninterrupted run."""
    jobs = {job["id"]: job for job in sweep_jobs(client, sweep_id)}
    expected = _uninterrupted([jobs[job_id]["spec"] for job_id in task])
    for job_id, history in zip(task, expected, strict=True):
        job = jobs[job_id]
        assert job["status"] == "succeeded", job["error"]
        assert job["attempt"] == 2
        resumed = job["summary"]["resume"]
        assert resumed["attempts"] == 2
        # from the checkpoint, not from step 0: one follows the first flush past each interval
        assert resumed["started_at_step"] >= CHECKPOINT_EVERY
        assert job["summary"]["fusion"]["fused_with"] == len(task) - 1
        stored = client.get(f"/v1/jobs/{job_id}/metrics").json()["series"]
        assert engine_series(stored) == history


@pytest.mark.timeout(240)
@pytest.mark.parametrize("stack", ["postgres"], indirect=True)
@pytest.mark.parametrize("victim", ["pool child", "main process", "stopped"])
def test_a_killed_fused_task_resumes_from_its_checkpoint_to_the_same_numbers(
        stack: Stack, db: Engine, client: TestClient, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, victim: str) -> None:
    monkeypatch.setenv("OPTIMLAB_CHECKPOINT_SECONDS", "3600")
    monkeypatch.setenv("OPTIMLAB_CHECKPOINT_MIN_SECONDS", "0")
    first = start_worker(stack, db, tmp_path / "first.log")
    second = None
    try:
        created = client.post("/v1/sweeps", json=SWEEP)
        assert created.status_code == 201, created.text
        sweep_id = created.json()["id"]
        (task,) = created.json()["fusion"]["tasks"]
        group = fused_group(db, task)
        store = CheckpointStore(stack.settings.checkpoints)
        wait_for(lambda: _stored_past(db, task, store, group.key), timeout=120,
                 interval=0.05, what="a checkpoint and points past it")
        if victim == "pool child":
            _pool_child(first).kill()  # the worker forks a new child and goes on
            resumer = first
        else:  # SIGKILL: no hand-back, the jobs are left running; SIGTERM: handed back
            stop(first, signal.SIGKILL if victim == "main process" else signal.SIGTERM)
            second = resumer = start_worker(stack, db, tmp_path / "second.log")
        finished_sweep(client, sweep_id, timeout=150)
    finally:
        for process in (first, second):
            if process is not None:
                stop(process)

    _assert_resumed(client, sweep_id, task)
    assert resumer is not None
    assert store.steps(group.key) == []


@pytest.mark.timeout(300)
@pytest.mark.usefixtures("up_env")
def test_optimlab_up_killed_mid_fused_sweep_resumes_it_from_its_checkpoint(
        embedded: Embedded, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPTIMLAB_CHECKPOINT_SECONDS", "3600")
    store = CheckpointStore(str(embedded.data_dir / "checkpoints"))
    db = make_engine(f"sqlite:///{embedded.data_dir / 'optimlab.db'}")
    try:
        with httpx.Client(base_url=embedded.url, timeout=30) as client:
            with running(embedded.start()) as up:
                created = client.post("/v1/sweeps", json=SWEEP)
                assert created.status_code == 201, created.text
                sweep_id = created.json()["id"]
                (task,) = created.json()["fusion"]["tasks"]
                key = fused_group(db, task).key
                wait_for(lambda: _stored_past(db, task, store, key), timeout=120,
                         interval=0.05, what="a checkpoint and points past it")
                stop(up, signal.SIGKILL)
            with running(embedded.start()):
                finished_sweep(client, sweep_id, timeout=150)
                _assert_resumed(client, sweep_id, task)
    finally:
        db.dispose()
    assert store.steps(key) == []  # the group's checkpoints go once every job is done
