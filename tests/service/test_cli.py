"""The optimlab command, run as a user runs it."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from typer.core import TyperGroup
from typer.testing import CliRunner

from optimlab.migrations import alembic_config, downgrade, upgrade
from optimlab.service.cli import app
from optimlab.service.db.connection import make_engine
from optimlab.service.settings import Settings
from tests.conftest import Stack

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "optimlab.service.cli", *args],
                          capture_output=True, text=True, env=env or dict(os.environ),
                          timeout=120, check=False)


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("up", "api", "worker", "migrate"):
        assert command in result.stdout
    assert "--version" in result.stdout


def commands() -> list[str]:
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    return sorted(group.commands)


@pytest.mark.parametrize("command", ["", *commands()])
def test_help_shows_flags_bare_and_options_with_a_metavar(command: str) -> None:
    args = [command, "--help"] if command else ["--help"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "100"})

    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    # Typer prints a positional argument's type beside its name ("ID <str>"); options and
    # flags are what the metavars are for.
    options = result.output.split("Options:", 1)[-1]
    assert not re.search(r"<(str|int|int range|path|float)>", options)
    # every flag on a line of its own, without a type after it
    flags = re.findall(r"^\s+(--[\w-]+)(?:\s{2,}|$)", result.output, flags=re.MULTILINE)
    assert "--help" in flags


def test_a_log_level_in_lower_case_is_taken_as_meant() -> None:
    result = run("--version", env={**os.environ, "OPTIMLAB_LOG_LEVEL": "debug"})

    assert result.returncode == 0, result.stderr
    assert Settings(log_level="warning").log_level == "WARNING"


def test_version_is_the_installed_distributions() -> None:
    result = run("--version")

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"optimlab {importlib.metadata.version('optimlab')}\n"


@pytest.mark.parametrize(("env", "expected"), [
    ({}, "~/.local/share/optimlab"),
    ({"XDG_DATA_HOME": "/srv/data"}, "/srv/data/optimlab"),
    ({"XDG_DATA_HOME": ""}, "~/.local/share/optimlab"),
    ({"XDG_DATA_HOME": "relative/path"}, "~/.local/share/optimlab"),  # XDG: ignored
    ({"XDG_DATA_HOME": "/srv/data", "OPTIMLAB_DATA_DIR": "/elsewhere"}, "/elsewhere"),
])
def test_one_default_data_dir_for_everything(monkeypatch: pytest.MonkeyPatch,
                                            env: dict[str, str], expected: str) -> None:
    for name in ("XDG_DATA_HOME", "OPTIMLAB_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    assert Settings().data_dir == Path(expected).expanduser()


def test_make_run_uses_optimlabs_default_data_dir_unless_told() -> None:
    def make_run(*variables: str) -> str:
        result = subprocess.run(["make", "--dry-run", "--always-make", "run", *variables],
                                cwd=ROOT, capture_output=True, text=True, timeout=60,
                                check=True)
        (line,) = [ln for ln in result.stdout.splitlines() if "optimlab up" in ln]
        return line

    assert "--data-dir" not in make_run()  # the Settings default, as `optimlab up` has it
    assert make_run("DATA_DIR=/tmp/somewhere").endswith("--data-dir /tmp/somewhere")


def test_migrate_creates_the_schema_and_is_idempotent(stack: Stack, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    env = {**stack.env(), "OPTIMLAB_DATA_DIR": str(fresh), "OPTIMLAB_DATABASE_URL": ""} \
        if stack.kind == "embedded" else stack.env()

    first, second = run("migrate", env=env), run("migrate", env=env)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    revisions = sorted(p.name[:4] for p in (ROOT / "migrations" / "versions").glob("0*.py"))
    at_head = f"database already at head (revision {head}): nothing to apply\n"
    if stack.kind == "embedded":  # a fresh file; the PostgreSQL database is migrated already
        assert first.stdout == (
            f"database upgraded from an empty database to revision {head}: applied "
            f"{len(revisions)} migrations ({', '.join(revisions)})\n")
    else:
        assert first.stdout == at_head
    assert second.stdout == at_head
    url = f"sqlite:///{fresh / 'optimlab.db'}" if stack.kind == "embedded" \
        else stack.settings.database
    db = make_engine(url)
    assert {"jobs", "metric_chunks", "workers", "alembic_version"} <= set(
        inspect(db).get_table_names())
    db.dispose()


def test_worker_refuses_a_gpu_that_is_not_there() -> None:
    result = run("worker", "--gpus", "7")
    assert result.returncode == 2
    assert "GPU 7 is not visible" in result.stderr


def test_migrate_says_from_which_revision_it_upgraded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optimlab.db'}"
    upgrade(url)
    downgrade(url, "0003")
    env = {**os.environ, "OPTIMLAB_DATA_DIR": str(tmp_path), "OPTIMLAB_DATABASE_URL": ""}

    result = run("migrate", env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("database upgraded from revision 0003 to revision ")
    assert "(0004, 0005" in result.stdout
