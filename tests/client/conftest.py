"""One embedded stack (`optimlab up`: API, a real worker, SQLite, the folder broker) for every
client and CLI test, started once: each test only submits its own short jobs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from optimlab.client import Client
from tests.processes import free_port, optimlab, stop, wait_ready
from tests.seed_table import SEED_SPEC


@dataclass(frozen=True)
class Server:
    url: str
    home: Path
    log: Path

    def client(self, **options: Any) -> Client:
        return Client(self.url, **options)

    def env(self) -> dict[str, str]:
        """A CLI's environment: the server from OPTIMLAB_SERVER, a HOME of its own."""
        return {**os.environ, "HOME": str(self.home), "OPTIMLAB_SERVER": self.url}

    def cli(self, *args: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        """Run ``optimlab ARGS`` as a user does; stdout and stderr as bytes."""
        return subprocess.run([sys.executable, "-m", "optimlab.service.cli", *args],
                              capture_output=True, env=env or self.env(), timeout=timeout,
                              check=False)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("client-stack")
    for name in ("data", "home", "cwd"):
        (root / name).mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPTIMLAB_DATABASE_URL", "OPTIMLAB_BROKER_URL", "OPTIMLAB_DATA_DIR")}
    env.update(HOME=str(root / "home"), OPTIMLAB_FLUSH_SECONDS="0.2", OPTIMLAB_AUTH="off")
    port = free_port()
    url, log = f"http://127.0.0.1:{port}", root / "up.log"
    # Two jobs at once, so that a test's long job never holds up another test's short one.
    process = optimlab("up", "--port", str(port), "--data-dir", str(root / "data"), "--gpus",
                       "none", "--concurrency", "2", env=env, cwd=root / "cwd", log=log)
    try:
        wait_ready(url, process, log)
        yield Server(url=url, home=root / "home", log=log)
    finally:
        stop(process)


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    with server.client() as c:
        yield c


@pytest.fixture(scope="session")
def seed_job(server: Server) -> dict[str, Any]:
    """The seed example, finished: 20 steps of SGD on x**2 towards 16."""
    with server.client() as c:
        job = c.submit({**SEED_SPEC, "name": "seed example"})
        return c.wait(job["id"], timeout=120)


LONG_SPEC: dict[str, Any] = {**SEED_SPEC, "name": "long", "steps": 50_000_000}


@pytest.fixture
def long_job(client: Client) -> Iterator[dict[str, Any]]:
    """A job that runs until it is cancelled (here at the latest when the test ends)."""
    job = client.submit(LONG_SPEC)
    yield job
    if client.job(job["id"])["status"] in ("queued", "running"):
        client.cancel(job["id"])
