"""`optimlab up`: the whole embedded stack as a user starts it, driven over HTTP."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.processes import descendants, free_port, gone, optimlab, running, stop, wait_ready
from tests.seed_table import SEED_SPEC, assert_matches_seed_table
from tests.stacks import wait_for

LONG_SPEC: dict[str, Any] = {**SEED_SPEC, "name": "long", "steps": 50_000_000}


@dataclass
class Embedded:
    url: str
    data_dir: Path
    cwd: Path
    home: Path
    log: Path

    def start(self, *extra: str) -> Any:
        env = {**os.environ, "HOME": str(self.home), "OPTIMLAB_FLUSH_SECONDS": "0.2",
               "OPTIMLAB_AUTH": "off"}
        env = {k: v for k, v in env.items()
               if k not in ("OPTIMLAB_DATABASE_URL", "OPTIMLAB_BROKER_URL", "OPTIMLAB_DATA_DIR")}
        port = self.url.rsplit(":", 1)[1]
        process = optimlab("up", "--port", port, "--data-dir", str(self.data_dir), "--gpus",
                           "none", *extra, env=env, cwd=self.cwd, log=self.log)
        wait_ready(self.url, process, self.log)
        return process


@pytest.fixture
def embedded(tmp_path: Path) -> Embedded:
    for name in ("data", "cwd", "home"):
        (tmp_path / name).mkdir()
    return Embedded(url=f"http://127.0.0.1:{free_port()}", data_dir=tmp_path / "data",
                    cwd=tmp_path / "cwd", home=tmp_path / "home", log=tmp_path / "up.log")


def post(url: str, spec: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{url}/v1/jobs", json=spec, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def get_job(url: str, job_id: str) -> dict[str, Any]:
    return httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()  # type: ignore[no-any-return]


def wait_status(url: str, job_id: str, *statuses: str, timeout: float = 30) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        job = get_job(url, job_id)
        return job if job["status"] in statuses else None

    return wait_for(reached, timeout=timeout, what=f"job {job_id} to be {'/'.join(statuses)}")


def seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


@pytest.mark.timeout(240)
def test_up_serves_the_seed_table_and_writes_only_to_its_data_dir(embedded: Embedded) -> None:
    with running(embedded.start()):
        job = post(embedded.url, {**SEED_SPEC, "name": "seed example"})
        done = wait_status(embedded.url, job["id"], "succeeded")
        history = httpx.get(f"{embedded.url}/v1/jobs/{job['id']}/metrics",
                            params={"names": "param.x,loss"}).json()
        csv = httpx.get(f"{embedded.url}/v1/jobs/{job['id']}/metrics.csv").text

        # POST -> running, measured by the server's own clock: created_at to started_at.
        latencies = []
        for _ in range(5):
            queued = post(embedded.url, SEED_SPEC)
            started = wait_status(embedded.url, queued["id"], "succeeded")
            latencies.append(seconds_between(started["created_at"], started["started_at"]))

        second = subprocess.run(
            [sys.executable, "-m", "optimlab.service.cli", "up", "--port", str(free_port()),
             "--data-dir", str(embedded.data_dir)],
            capture_output=True, text=True, timeout=60, check=False, cwd=embedded.cwd,
            env={**os.environ, "HOME": str(embedded.home)})

    x, loss = history["series"]
    assert (x["name"], loss["name"]) == ("param.x", "loss")
    assert x["steps"] == loss["steps"] == list(range(20))
    assert_matches_seed_table(x["values"], loss["values"])
    assert done["summary"]["steps_done"] == 20
    assert done["summary"]["device"] == "cpu"
    assert csv.splitlines()[0] == "step,name,value"
    # loss, lr, 3 norms, param.x per step; and the worker's wall_time, a point per batch
    assert len([row for row in csv.splitlines()[1:] if ",wall_time," not in row]) == 6 * 20
    assert max(latencies) <= 0.2, latencies
    assert second.returncode == 2
    # typer draws a box around the message and wraps it: read it as plain words
    assert "in use by another" in " ".join(re.sub(r"[│╭╮╰╯─]", " ", second.stderr).split())
    assert list(embedded.cwd.iterdir()) == []
    assert list(embedded.home.iterdir()) == []
    assert (embedded.data_dir / "optimlab.db").exists()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_stops_every_process_within_ten_seconds_even_mid_job(
        embedded: Embedded, sig: int) -> None:
    process = embedded.start()
    job = post(embedded.url, LONG_SPEC)
    wait_status(embedded.url, job["id"], "running")
    family = descendants(process)
    assert len(family) >= 4  # up, api, worker, its pool child

    seconds = stop(process, sig, timeout=12)

    assert seconds <= 10, f"stopping took {seconds:.1f} s"
    assert gone(family)


@pytest.mark.timeout(300)
def test_a_job_interrupted_by_a_stop_runs_again_at_the_next_start(embedded: Embedded) -> None:
    with running(embedded.start()) as first:
        job = post(embedded.url, LONG_SPEC)
        queued = post(embedded.url, LONG_SPEC)  # waits behind the first: concurrency 1
        wait_status(embedded.url, job["id"], "running")
        stop(first)

    with running(embedded.start()):
        rerun = wait_status(embedded.url, job["id"], "running")
        assert rerun["attempt"] == 2
        assert get_job(embedded.url, queued["id"])["status"] == "queued"
        httpx.post(f"{embedded.url}/v1/jobs/{job['id']}/cancel")
        wait_status(embedded.url, queued["id"], "running")
        httpx.post(f"{embedded.url}/v1/jobs/{queued['id']}/cancel")
        wait_status(embedded.url, queued["id"], "cancelled")


@pytest.mark.timeout(240)
def test_cancel_stops_a_running_job_and_keeps_its_metrics(embedded: Embedded) -> None:
    with running(embedded.start()):
        job = post(embedded.url, LONG_SPEC)
        wait_status(embedded.url, job["id"], "running")
        time.sleep(0.5)

        cancelled = httpx.post(f"{embedded.url}/v1/jobs/{job['id']}/cancel").json()
        time.sleep(1.5)
        first = httpx.get(f"{embedded.url}/v1/jobs/{job['id']}/metrics",
                          params={"names": "loss"}).json()["series"][0]
        time.sleep(1.0)
        later = httpx.get(f"{embedded.url}/v1/jobs/{job['id']}/metrics",
                          params={"names": "loss"}).json()["series"][0]
        final = get_job(embedded.url, job["id"])

    assert cancelled["status"] == "cancelled"
    assert len(first["steps"]) > 0
    assert later["steps"] == first["steps"]  # stopped: nothing new after a second
    assert final["summary"]["outcome"] == "cancelled"
    assert final["summary"]["steps_done"] == len(first["steps"])


def worker_main(process: subprocess.Popen[bytes]) -> psutil.Process:
    """`optimlab up`'s worker child: the Celery parent (its pool children below it)."""
    def is_worker(p: psutil.Process) -> bool:
        try:
            return "worker" in p.cmdline()
        except (psutil.ZombieProcess, psutil.NoSuchProcess):
            return False  # the killed one, not reaped yet

    (worker,) = [p for p in psutil.Process(process.pid).children() if is_worker(p)]
    return worker


@pytest.mark.timeout(240)
def test_a_killed_worker_is_restarted_while_the_api_keeps_answering(
        embedded: Embedded) -> None:
    with running(embedded.start()) as process:
        old = worker_main(process)
        pool = old.children(recursive=True)
        assert pool  # the pool child, which the restart must not leave behind

        old.kill()
        answers = []

        def new_worker() -> psutil.Process | None:
            answers.append(httpx.get(f"{embedded.url}/v1/jobs", timeout=10).status_code)
            try:
                worker = worker_main(process)
            except ValueError:
                return None  # between the crash and the restart
            return worker if worker.pid != old.pid else None

        restarted = wait_for(new_worker, timeout=60, interval=0.2, what="a new worker")
        job = post(embedded.url, {**SEED_SPEC, "name": "after the crash"})
        done = wait_status(embedded.url, job["id"], "succeeded", timeout=90)
        assert process.poll() is None  # `up` itself lives on

    assert set(answers) == {200}
    assert restarted.pid != old.pid
    assert gone(pool)
    assert done["summary"]["steps_done"] == 20
    assert "restarting it in" in embedded.log.read_text()
