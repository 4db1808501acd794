"""A database for each migration test: a SQLite file and a fresh PostgreSQL database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Connection, text


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    server: str = request.getfixturevalue("postgres_server")
    name = f"optimlab_migration_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield server.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def stored_id(conn: Connection, job_id: uuid.UUID) -> str | uuid.UUID:
    """A job id as the schema of an older revision stores it (SQLite: hex text)."""
    return job_id.hex if conn.dialect.name == "sqlite" else job_id


def insert_job(conn: Connection) -> uuid.UUID:
    """A finished job's row, written with SQL (the ORM's models are the newest schema)."""
    job_id = uuid.uuid4()
    conn.execute(text("INSERT INTO jobs (id, name, status, spec, queue, created_at, attempt) "
                      "VALUES (:id, '', 'succeeded', '{}', 'cpu', '2026-01-01', 1)"),
                 {"id": stored_id(conn, job_id)})
    return job_id
