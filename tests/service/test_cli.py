"""The optimlab command, run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import inspect

from optimlab.service.db.connection import make_engine
from tests.conftest import Stack


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "optimlab.service.cli", *args],
                          capture_output=True, text=True, env=env or dict(os.environ),
                          timeout=120, check=False)


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("up", "api", "worker", "migrate"):
        assert command in result.stdout


def test_migrate_creates_the_schema_and_is_idempotent(stack: Stack, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    env = {**stack.env(), "OPTIMLAB_DATA_DIR": str(fresh), "OPTIMLAB_DATABASE_URL": ""} \
        if stack.kind == "embedded" else stack.env()

    first, second = run("migrate", env=env), run("migrate", env=env)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    url = f"sqlite:///{fresh / 'optimlab.db'}" if stack.kind == "embedded" \
        else stack.settings.database
    engine = make_engine(url)
    assert {"jobs", "metric_chunks", "workers", "alembic_version"} <= set(
        inspect(engine).get_table_names())
    engine.dispose()


def test_worker_refuses_a_gpu_that_is_not_there() -> None:
    result = run("worker", "--gpus", "7")
    assert result.returncode == 2
    assert "GPU 7 is not visible" in result.stderr
