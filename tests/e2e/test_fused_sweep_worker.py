"""Sweeps through a real worker, one per stack for the module's tests: a grid sweep ranks
its jobs; a fused sweep's points are still their own jobs, with the numbers they have
alone; a diverging point and a cancelled one end alone."""

from __future__ import annotations

import math
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from optimlab.service.db.summaries import converged_at
from optimlab.worker.engine.fused.loop import run_fused
from optimlab.worker.spec import JobSpec
from optimlab.worker.sql_sink import WALL_TIME
from tests.conftest import Stack
from tests.seed_table import SEED_SPEC
from tests.stacks import wait_for
from tests.worker.engine.fused.fusing import CollectingSink
from tests.worker.engine.histories import expected_history

SWEEP: dict[str, Any] = {
    "name": "fused seed sweep", "base": {**SEED_SPEC, "steps": 300}, "seeds": 2,
    # lr 0.6 makes x**2 -> 16 blow up: those points diverge inside the fused run
    "axes": {"optimizer.lr": [0.001, 0.01, 0.6], "optimizer.momentum": [0.0, 0.9]}}


def engine_series(stored: list[dict[str, Any]]) -> dict[str, list[float | None]]:
    """Stored values by series, the worker's wall_time (which the engine has not) aside."""
    return {s["name"]: s["values"] for s in stored if s["name"] != WALL_TIME}


def finished_sweep(client: httpx.Client, sweep_id: str, timeout: float) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/v1/sweeps/{sweep_id}").json()
        return body if body["status"] == "finished" else None

    return wait_for(finished, timeout=timeout, interval=0.2, what="the sweep to finish")


def sweep_jobs(client: httpx.Client, sweep_id: str) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = client.get(
        "/v1/jobs", params={"sweep": sweep_id, "limit": 100}).json()["data"]
    return jobs


@pytest.fixture
def stack(shared_worker_stack: Stack) -> Stack:
    """The module's worker runs every test's jobs (tests/e2e/conftest.py)."""
    return shared_worker_stack


def run_sweep(client: TestClient, request: dict[str, Any]) -> dict[str, Any]:
    """POST the sweep, let the module's worker run it, return the finished sweep."""
    created = client.post("/v1/sweeps", json=request)
    assert created.status_code == 201, created.text
    return finished_sweep(client, created.json()["id"], timeout=240)


@pytest.mark.timeout(300)
def test_a_fused_sweep_gives_every_job_its_own_numbers(client: TestClient) -> None:
    sweep = run_sweep(client, SWEEP)

    jobs = sweep_jobs(client, sweep["id"])
    assert len(sweep["fusion"]["tasks"]) == 1
    assert sorted(sweep["fusion"]["tasks"][0]) == sorted(j["id"] for j in jobs)
    assert sweep["fusion"]["alone"] == []
    for job in jobs:
        assert job["status"] == "succeeded", job["error"]
        assert job["summary"]["fusion"] == {"fused_with": 11, "mode": "broadcast", "reason": None}
        alone, summary = expected_history(job["spec"])
        stored = client.get(f"/v1/jobs/{job['id']}/metrics").json()["series"]
        assert engine_series(stored) == \
            {name: [v if math.isfinite(v) else None for v in values]
             for name, values in alone.items()}
        assert job["summary"]["outcome"] == summary.outcome
        # the rule alone runs apply (default window: 30 of the 300 steps)
        loss = (np.arange(len(alone["loss"])), np.array(alone["loss"]))
        assert job["summary"]["converged_at"] == converged_at(
            loss, final=summary.final_loss, tolerance=0.01)
        if job["sweep_point"]["optimizer.lr"] == 0.6:
            assert summary.outcome == "diverged"


MLP_SWEEP: dict[str, Any] = {
    "name": "fused mlp sweep", "seeds": 2,
    "base": {"model": {"kind": "mlp", "hidden": [32]},
             "data": {"kind": "sklearn", "name": "digits", "standardize": True,
                      "val_fraction": 0.2},
             "optimizer": {"name": "SGD", "lr": 0.01}, "batch_size": 32, "steps": 60,
             "eval_every": 30},
    "axes": {"optimizer.lr": [0.01, 0.1], "optimizer.momentum": [0.0, 0.9]}}


@pytest.mark.timeout(300)
def test_an_mlp_sweep_runs_batched_in_the_worker_with_every_job_its_numbers(
        client: TestClient) -> None:
    """The worker makes MKL's products independent of its thread count (numerics.py), so a
    batched product over the jobs sums as each job's own: the probe keeps ``batched``."""
    sweep = run_sweep(client, MLP_SWEEP)

    jobs = sweep_jobs(client, sweep["id"])
    assert len(jobs) == 8
    assert len(sweep["fusion"]["tasks"]) == 1
    for job in jobs:
        assert job["status"] == "succeeded", job["error"]
        fusion = job["summary"]["fusion"]
        if torch.backends.mkl.is_available():
            assert fusion["mode"] == "batched", fusion
        alone, _ = expected_history(job["spec"])
        stored = client.get(f"/v1/jobs/{job['id']}/metrics").json()["series"]
        assert engine_series(stored) == \
            {name: [v if math.isfinite(v) else None for v in values]
             for name, values in alone.items()}


@pytest.mark.timeout(300)
def test_cancelling_one_point_stops_only_it(client: TestClient) -> None:
    long = {**SWEEP, "base": {**SEED_SPEC, "steps": 15_000}, "seeds": None,
            "axes": {"optimizer.lr": [0.0001, 0.0002], "optimizer.momentum": [0.0, 0.5]}}
    sweep_id = client.post("/v1/sweeps", json=long).json()["id"]

    def progressing() -> list[dict[str, Any]] | None:
        jobs = sweep_jobs(client, sweep_id)
        started = all(j["status"] == "running" and (j["summary"] or {}).get("steps_done")
                      for j in jobs)
        return jobs if started else None

    jobs = wait_for(progressing, timeout=120, interval=0.1, what="the fused run to store")
    victim = jobs[0]["id"]
    assert client.post(f"/v1/jobs/{victim}/cancel").status_code == 200
    finished_sweep(client, sweep_id, timeout=240)

    by_id = {j["id"]: j for j in sweep_jobs(client, sweep_id)}
    assert by_id[victim]["status"] == "cancelled"
    assert by_id[victim]["summary"]["outcome"] == "cancelled"
    assert by_id[victim]["summary"]["steps_done"] < 15_000
    others = [j for i, j in by_id.items() if i != victim]
    assert all(j["status"] == "succeeded" for j in others)
    # the others' numbers are those of a fused run without the cancelled point, which the
    # engine tests hold equal to each job alone
    specs = [JobSpec.model_validate(j["spec"]) for j in others]
    sink = CollectingSink(len(specs))
    summaries = run_fused(specs, sink)
    for job, summary in zip(others, summaries, strict=True):
        assert job["summary"]["steps_done"] == 15_000
        assert job["summary"]["final_loss"] == summary.final_loss
        assert job["summary"]["best_loss"] == summary.best_loss


GRID_BASE: dict[str, Any] = {
    "model": {"kind": "linear"},
    "data": {"kind": "synthetic", "generator": "linear", "samples": 64, "features": 3},
    "optimizer": {"name": "SGD", "lr": 0.01}, "batch_size": 8, "steps": 60}
GRID_SWEEP: dict[str, Any] = {"name": "linreg grid", "base": GRID_BASE, "seeds": 2,
                              "axes": {"optimizer.lr": [0.003, 0.01, 0.03],
                                       "optimizer.momentum": [0.0, 0.5, 0.9]}}


@pytest.mark.timeout(300)
def test_a_grid_sweep_runs_and_ranks_its_jobs(client: TestClient) -> None:
    sweep = run_sweep(client, GRID_SWEEP)
    sweep_id = sweep["id"]

    assert sweep["counts"] == {"succeeded": 18}
    jobs = client.get("/v1/jobs", params={"sweep": sweep_id, "limit": 100}).json()["data"]
    by_hand = sorted(jobs, key=lambda j: j["summary"]["final_loss"])
    assert [e["job_id"] for e in sweep["leaderboard"]] == [j["id"] for j in by_hand]
    assert [e["value"] for e in sweep["leaderboard"]] == \
        [j["summary"]["final_loss"] for j in by_hand]
    # the seeds draw different data and batches: no ties to hide an ordering mistake
    assert len({e["value"] for e in sweep["leaderboard"]}) == 18

    best = client.get(f"/v1/sweeps/{sweep_id}", params={"rank_by": "best_loss"}).json()
    assert [e["job_id"] for e in best["leaderboard"]] == \
        [j["id"] for j in sorted(jobs, key=lambda j: j["summary"]["best_loss"])]

    # a sweep's job is the job it describes: its stored history is the engine's, run alone
    job = by_hand[0]
    stored = client.get(f"/v1/jobs/{job['id']}/metrics", params={"names": "loss,lr"}).json()
    alone, _ = expected_history(job["spec"])
    assert stored["series"][0]["values"] == alone["loss"]
    assert stored["series"][1]["values"] == alone["lr"]
