"""A 3x3 grid sweep with 2 seeds through a real worker, on both stacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import Stack
from tests.e2e.test_worker_stack import start_worker
from tests.processes import stop
from tests.stacks import wait_for
from tests.worker.engine.histories import expected_history

BASE: dict[str, Any] = {
    "model": {"kind": "linear"},
    "data": {"kind": "synthetic", "generator": "linear", "samples": 64, "features": 3},
    "optimizer": {"name": "SGD", "lr": 0.01}, "batch_size": 8, "steps": 60}
SWEEP: dict[str, Any] = {"name": "linreg grid", "base": BASE, "seeds": 2,
                         "axes": {"optimizer.lr": [0.003, 0.01, 0.03],
                                  "optimizer.momentum": [0.0, 0.5, 0.9]}}


@pytest.mark.timeout(300)
def test_a_grid_sweep_runs_and_ranks_its_jobs(stack: Stack, db: Engine, client: TestClient,
                                              tmp_path: Path) -> None:
    worker = start_worker(stack, db, tmp_path / "worker.log")
    try:
        created = client.post("/v1/sweeps", json=SWEEP)
        assert created.status_code == 201, created.text
        sweep_id = created.json()["id"]

        def finished() -> dict[str, Any] | None:
            body: dict[str, Any] = client.get(f"/v1/sweeps/{sweep_id}").json()
            return body if body["status"] == "finished" else None

        sweep = wait_for(finished, timeout=240, interval=0.2, what="the sweep to finish")
    finally:
        stop(worker)

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
