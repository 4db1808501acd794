"""What a real worker records around its jobs, read through the API: a torch warning among
the job's log lines, the wall_time series, the process figures; and the noise of the logs."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import Stack
from tests.e2e.test_embedded_up import Embedded, embedded, post, wait_status
from tests.e2e.test_worker_stack import start_worker
from tests.e2e.test_worker_stack import wait_status as wait_job
from tests.processes import running, stop
from tests.seed_table import SEED_SPEC
from tests.worker.test_run_records import PROCESS_FIELDS, WARNING_SPEC

__all__ = ["embedded"]  # the fixture of `optimlab up`


@pytest.mark.timeout(180)
def test_a_jobs_torch_warning_wall_time_and_process_figures_through_the_api(
        stack: Stack, db: Engine, client: TestClient, tmp_path: Path) -> None:
    worker = start_worker(stack, db, tmp_path / "worker.log")
    try:
        job = client.post("/v1/jobs", json={**WARNING_SPEC, "name": "warns"}).json()
        done = wait_job(client, job["id"], "succeeded", "failed")
        logs = client.get(f"/v1/jobs/{job['id']}/logs").json()["lines"]
        warned = client.get(f"/v1/jobs/{job['id']}/logs", params={"min_level": "WARNING"})
        series = client.get(f"/v1/jobs/{job['id']}/series").json()["series"]
        wall = client.get(f"/v1/jobs/{job['id']}/metrics", params={"names": "wall_time"})
    finally:
        stop(worker)

    assert done["status"] == "succeeded", done["error"]
    assert [(line["level"], line["logger"]) for line in logs] == [
        ("INFO", "optimlab.worker.execution"), ("WARNING", "py.warnings"),
        ("INFO", "optimlab.worker.execution")]
    assert "starts on" in logs[0]["message"]
    assert "UserWarning: Using a target size" in logs[1]["message"]
    assert logs[2]["message"].endswith("ends succeeded (completed after 20 steps)")
    assert all(line["attempt"] == 1 and line["at"].endswith("Z") for line in logs)
    assert warned.json()["lines"] == [logs[1]]
    by_name = {s["name"]: s for s in series}
    assert [s["name"] for s in series][:2] == ["loss", "lr"]
    assert by_name["loss"] == {"name": "loss", "points": 20, "first_step": 0, "last_step": 19}
    assert by_name["wall_time"]["last_step"] == 19
    (wall_time,) = wall.json()["series"]
    assert wall_time["values"][-1] == done["summary"]["wall_seconds"]
    process = done["summary"]["process"]
    assert set(process) == PROCESS_FIELDS
    assert process["peak_rss_bytes"] > 0
    assert process["shared_by"] == 1


JOBS = 10


def count_lines(log: Path) -> tuple[int, list[str]]:
    text = log.read_text(errors="replace")
    return text.count("\n"), text.splitlines()


@pytest.mark.timeout(240)
def test_up_logs_a_start_and_an_end_line_per_job_and_little_else(embedded: Embedded) -> None:
    with running(embedded.start()):
        ids = [post(embedded.url, {**SEED_SPEC, "name": f"quiet {k}"})["id"]
               for k in range(JOBS)]
        done = [wait_status(embedded.url, job_id, "succeeded", "failed") for job_id in ids]
        rerun = httpx.post(f"{embedded.url}/v1/jobs/{ids[0]}/rerun", timeout=10).json()
        wait_status(embedded.url, rerun["id"], "succeeded")
    total, lines = count_lines(embedded.log)

    assert {job["status"] for job in done} == {"succeeded"}
    jobs = [*ids, rerun["id"]]
    for job_id in jobs:
        mine = [line for line in lines if job_id in line]
        assert len(mine) == 2, mine
        assert " INFO optimlab.worker.execution: " in mine[0]
        assert "run 1 starts on" in mine[0]
        assert mine[1].endswith("run 1 ends succeeded (completed after 20 steps)")
    # what a start and a stop print (Celery's banner, uvicorn's start, the auth line) is
    # fixed; the migrations print a line each on a fresh data folder
    chatter = sum("alembic.runtime.migration: Running upgrade" in line for line in lines)
    assert total - chatter <= 2 * len(jobs) + 60, "\n".join(lines)
    assert not [line for line in lines if '"GET /' in line or '"POST /' in line]
