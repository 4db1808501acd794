"""Auth end to end, on real processes: `optimlab keys` on the embedded database, `optimlab
up` with auth required (the Python client and the CLI with --key / OPTIMLAB_API_KEY, event
streams included), `up`'s loopback default (off, said at start) and `api`'s refusal to
serve a non-loopback address with auth off."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from optimlab.client import Client, Unauthorized
from optimlab.service.jobs.keys import PREFIX, hash_key
from tests.processes import free_port, optimlab, stop, wait_ready
from tests.seed_table import SEED_SPEC

UNAUTHORIZED = 5  # the CLI's exit code for a missing or refused key (client/cli.py)


@dataclass(frozen=True)
class Secured:
    url: str
    data_dir: Path
    log: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("OPTIMLAB_DATABASE_URL", "OPTIMLAB_BROKER_URL", "OPTIMLAB_API_KEY")}
        return {**env, "OPTIMLAB_DATA_DIR": str(self.data_dir), "OPTIMLAB_SERVER": self.url,
                **extra}

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "optimlab.service.cli", *args],
                              capture_output=True, text=True, env=self.env(**env), timeout=120,
                              check=False)

    def new_key(self, name: str) -> str:
        made = self.cli("keys", "create", "--name", name)
        assert made.returncode == 0, made.stderr
        return made.stdout.strip()


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTIMLAB_")}
    return {**env, "OPTIMLAB_FLUSH_SECONDS": "0.2", **extra}


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    root = tmp_path_factory.mktemp("secured")
    url, log = f"http://127.0.0.1:{free_port()}", root / "up.log"
    process = optimlab("up", "--port", url.rsplit(":", 1)[1], "--data-dir", str(root / "data"),
                       "--gpus", "none", env=clean_env(OPTIMLAB_AUTH="required"), cwd=root,
                       log=log)
    try:
        wait_ready(url, process, log)
        yield Secured(url, root / "data", log)
    finally:
        stop(process)


def test_up_says_auth_is_required_and_refuses_requests_without_a_key(secured: Secured) -> None:
    assert "auth is required" in secured.log.read_text()
    response = httpx.get(f"{secured.url}/v1/jobs", timeout=10)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_keys_create_list_revoke_on_the_cli(secured: Secured) -> None:
    key = secured.new_key("carol")
    assert key.startswith(PREFIX)
    listed = secured.cli("keys", "list")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if " carol " in f"{line} ")
    assert key not in listed.stdout
    assert (row.split()[3], row.split()[-1]) == ("no", "-")  # not admin, not revoked
    with sqlite3.connect(secured.data_dir / "optimlab.db") as db:  # only the hash is stored
        stored = db.execute("SELECT key_hash FROM api_keys WHERE name = 'carol'").fetchone()[0]
        dump = "\n".join(db.iterdump())
    assert stored == hash_key(key)
    assert key not in dump

    assert secured.cli("jobs", "--key", key).returncode == 0
    key_id = row.split()[0]
    assert secured.cli("keys", "revoke", key_id).returncode == 0
    refused = secured.cli("jobs", "--key", key)
    assert refused.returncode == UNAUTHORIZED
    assert "401" in refused.stderr
    after = next(line for line in secured.cli("keys", "list").stdout.splitlines()
                 if line.startswith(f"{key_id} "))
    assert after.split()[-1] != "-"  # the time it was revoked
    assert secured.cli("keys", "revoke", key_id).returncode == 1  # already


def test_the_client_and_the_cli_send_the_key_streams_included(secured: Secured) -> None:
    key = secured.new_key("dave")
    with Client(secured.url, api_key=key) as client:
        job = client.submit(SEED_SPEC)
        done = client.wait(job["id"], timeout=120)  # follows the job's event stream
        assert done["status"] == "succeeded"
        assert len(client.history(job["id"])["loss"]["steps"]) == SEED_SPEC["steps"]
    with Client(secured.url, api_key="") as anonymous, pytest.raises(Unauthorized):
        anonymous.job(job["id"])
    shown = secured.cli("show", job["id"], OPTIMLAB_API_KEY=key)
    assert shown.returncode == 0, shown.stderr
    missing = secured.cli("show", job["id"])
    assert missing.returncode == UNAUTHORIZED
    assert "OPTIMLAB_API_KEY" in missing.stderr
    other = secured.new_key("erin")  # another owner's key: the job is not found
    assert secured.cli("show", job["id"], "--key", other).returncode == 2


def test_up_on_loopback_defaults_to_auth_off_and_says_so(tmp_path: Path) -> None:
    url, log = f"http://127.0.0.1:{free_port()}", tmp_path / "up.log"
    process = optimlab("up", "--port", url.rsplit(":", 1)[1], "--data-dir", str(tmp_path / "d"),
                       "--gpus", "none", env=clean_env(), cwd=tmp_path, log=log)
    try:
        wait_ready(url, process, log)
        assert "auth is off" in log.read_text()
        assert httpx.get(f"{url}/v1/jobs", timeout=10).status_code == 200
    finally:
        stop(process)


@pytest.mark.parametrize("command", ["api", "up"])
def test_a_non_loopback_address_with_auth_off_is_refused(command: str, tmp_path: Path) -> None:
    args = [sys.executable, "-m", "optimlab.service.cli", command, "--host", "0.0.0.0",
            "--port", str(free_port())]
    if command == "up":
        args += ["--data-dir", str(tmp_path / "d")]
    refused = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False,
                             env=clean_env(OPTIMLAB_AUTH="off"), cwd=tmp_path)
    assert refused.returncode == 2
    assert "--allow-no-auth" in refused.stderr
    assert "OPTIMLAB_AUTH=off" in refused.stderr
