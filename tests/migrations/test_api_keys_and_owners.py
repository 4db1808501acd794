"""Migration 0007 adds api_keys and an owner on jobs, sweeps and data sets (old rows have
none), and takes them away again without touching the rows, their points or their logs."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import inspect, select

from optimlab.migrations import downgrade, upgrade
from optimlab.service.db import job_logs
from optimlab.service.db.connection import make_engine
from optimlab.service.db.job_logs import LogLine
from optimlab.service.db.models import Job
from optimlab.service.jobs import keys
from tests.migrations.conftest import insert_job


def test_owners_and_keys_come_with_0007_and_go_with_its_downgrade(database: str) -> None:
    upgrade(database, "0006")
    db = make_engine(database)
    with db.begin() as conn:
        job_id = insert_job(conn)
        job_logs.write_lines(conn, [(job_id, 1, LogLine(datetime(2026, 1, 1), logging.INFO,
                                                        "optimlab", "kept"))])

    upgrade(database)

    columns = {t: {c["name"] for c in inspect(db).get_columns(t)}
               for t in ("jobs", "sweeps", "datasets")}
    assert all("owner" in names for names in columns.values())
    with db.connect() as conn:
        assert conn.scalar(select(Job.owner).where(Job.id == job_id)) is None
    made = keys.create_key(db=db, name="first", admin=True)
    assert keys.authenticate(db=db, key=made.key) is not None

    downgrade(database, "0006")

    assert "api_keys" not in inspect(db).get_table_names()
    assert "owner" not in {c["name"] for c in inspect(db).get_columns("jobs")}
    with db.connect() as conn:  # SQLite dropped the column in place: nothing cascaded
        lines = job_logs.read_lines(conn, job_id, attempt=None, min_level=0, limit=10)
    assert [line.message for line in lines] == ["kept"]
    db.dispose()
