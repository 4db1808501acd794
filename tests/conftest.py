"""Fixtures for the real stack: SQLite + folder broker ("embedded") and PostgreSQL + Redis.

PostgreSQL and Redis are required: a test that needs one fails, never skips, when it is
unreachable. Each test session gets its own PostgreSQL database, emptied after every test;
each test gets its own queue names on Redis, deleted afterwards.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import Engine, make_url, text

from optimlab.migrations import upgrade
from optimlab.service.api.main import create_app
from optimlab.service.db.connection import make_engine
from optimlab.service.settings import Settings
from optimlab.worker.engine.numerics import reproducible_products

POSTGRES_SERVER = os.environ.get("OPTIMLAB_TEST_POSTGRES_URL",
                                 "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("OPTIMLAB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _redis_for_this_process(url: str) -> str:
    """Under pytest-xdist, worker gwN uses Redis database N + 1 of the same server: a test
    that flushes its database (tests/e2e/test_outages.py) touches no other worker's."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    return url.rsplit("/", 1)[0] + f"/{int(worker[2:]) + 1}"

TABLES = ("metric_chunks", "job_logs", "job_tags", "jobs", "sweeps", "workers", "datasets",
          "api_keys")
# Short intervals so that tests of heartbeats and recovery take seconds, not minutes.
# Auth off, as a single user's stack: tests of keys and owners (tests/service/api/
# test_owners.py) turn it on for themselves.
FAST: dict[str, Any] = {"flush_seconds": 0.2, "heartbeat_seconds": 0.5,
                        "stale_after_seconds": 3.0, "auth": "off"}


@dataclass(frozen=True)
class Stack:
    """One deployment shape: its settings, and the environment a child process needs."""

    kind: str
    settings: Settings

    def env(self) -> dict[str, str]:
        s = self.settings
        env = {
            "OPTIMLAB_DATA_DIR": str(s.data_dir),
            "OPTIMLAB_DATABASE_URL": s.database,
            "OPTIMLAB_BROKER_URL": s.broker_url or "",
            "OPTIMLAB_QUEUE_PREFIX": s.queue_prefix,
            "OPTIMLAB_FLUSH_SECONDS": str(s.flush_seconds),
            "OPTIMLAB_HEARTBEAT_SECONDS": str(s.heartbeat_seconds),
            "OPTIMLAB_STALE_AFTER_SECONDS": str(s.stale_after_seconds),
            "OPTIMLAB_BROKER_POLL_SECONDS": str(s.broker_poll_seconds),
            "OPTIMLAB_AUTH": s.auth,
        }
        return {**os.environ, **env}


def pytest_configure(config: pytest.Config) -> None:
    # As a worker does (worker/launch.py): before torch computes anything in this process.
    reproducible_products()


# Whole folders and modules of tests that start processes (workers, `optimlab up`, a
# browser) or build the wheel: `make test` runs them; `pytest -m "not slow"` leaves them out.
SLOW_PATHS = ("tests/e2e/", "tests/browser/", "tests/client/", "tests/test_packaging.py",
              "tests/test_readme.py", "tests/test_compose.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(str(config.rootpath))
    for item in items:
        where = Path(str(item.path)).relative_to(root).as_posix()
        if where.startswith(SLOW_PATHS):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    try:
        with psycopg.connect(POSTGRES_SERVER, connect_timeout=3):
            pass
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required at {POSTGRES_SERVER} and is unreachable: {exc}",
                    pytrace=False)
    return POSTGRES_SERVER


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = _redis_for_this_process(REDIS_URL)
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is required at {url} and is unreachable: {exc}", pytrace=False)
    return url


@pytest.fixture(scope="session")
def postgres_database(postgres_server: str) -> Iterator[str]:
    """A fresh database for this test session, migrated to head, dropped at the end."""
    name = f"optimlab_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = postgres_server.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    yield url
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite database migrated to head once per session, for each test to copy."""
    path = tmp_path_factory.mktemp("migrated") / "optimlab.db"
    upgrade(f"sqlite:///{path}")
    return path


# What the store answers (tests/service/db, and the API tests whose answers come from its
# SQL: listings, histories, events, comparisons, sweeps, uploads, outages) is tested on both
# stacks. Tests of what the API decides before it stores anything (validation, hostile
# input, spec escapes) run on the embedded one only:
# ``pytestmark = EMBEDDED_ONLY``.
EMBEDDED_ONLY = pytest.mark.parametrize("stack", ["embedded"], indirect=True)


@pytest.fixture(params=["embedded", "postgres"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """Both deployments: SQLite + folder broker, and PostgreSQL + Redis."""
    with stack_of(request.param, tmp_path, request) as stack:
        yield stack


@contextlib.contextmanager
def stack_of(kind: str, folder: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A stack of ``kind`` with its data in ``folder``: its own SQLite copy or, on
    PostgreSQL, the session's database emptied afterwards; its own queue names."""
    prefix = f"test-{uuid.uuid4().hex[:8]}-"
    if kind == "embedded":
        settings = Settings(data_dir=folder / "data", database_url=None, broker_url=None,
                            queue_prefix=prefix, **FAST)
        settings.data_dir.mkdir()
        _copy_sqlite(request.getfixturevalue("migrated_sqlite"), settings.database)
        yield Stack("embedded", settings)
        return
    database = request.getfixturevalue("postgres_database")
    broker = request.getfixturevalue("redis_url")
    settings = Settings(data_dir=folder / "data", database_url=database, broker_url=broker,
                        queue_prefix=prefix, **FAST)
    try:
        yield Stack("postgres", settings)
    finally:
        _empty_postgres(database)
        _delete_redis_keys(broker, prefix)


@pytest.fixture
def db(stack: Stack) -> Iterator[Engine]:
    db = make_engine(stack.settings.database)
    yield db
    db.dispose()


@pytest.fixture
def client(stack: Stack) -> Iterator[TestClient]:
    with TestClient(create_app(stack.settings)) as client:
        yield client


def _copy_sqlite(source: Path, url: str) -> None:
    """A copy of ``source`` as the database at ``url``, through SQLite's backup API (whole
    and consistent, whatever journal mode the file is in): what ``upgrade`` would make."""
    target = make_url(url).database
    assert target is not None
    with contextlib.closing(sqlite3.connect(source)) as src, \
            contextlib.closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def _empty_postgres(url: str) -> None:
    db = make_engine(url)
    with db.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
    db.dispose()


def _delete_redis_keys(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"*{prefix}*"))
    if keys:
        client.delete(*keys)
