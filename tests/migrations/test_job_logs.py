"""Migration 0006 adds job_logs (numbered rows, removed with their job) and takes it away."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import delete, inspect

from optimlab.migrations import downgrade, upgrade
from optimlab.service.db import job_logs
from optimlab.service.db.connection import make_engine
from optimlab.service.db.job_logs import LogLine
from optimlab.service.db.models import Job
from tests.migrations.conftest import insert_job


def test_job_logs_come_with_0006_and_go_with_its_downgrade(database: str) -> None:
    upgrade(database, "0005")
    db = make_engine(database)
    with db.begin() as conn:
        job_id = insert_job(conn)
    assert "job_logs" not in inspect(db).get_table_names()

    upgrade(database)

    at = datetime(2026, 1, 1, 12, 0, 0, 123456)
    written = [LogLine(at, logging.WARNING, "py.warnings", "a warning"),
               LogLine(at, logging.INFO, "optimlab", "the end")]
    with db.begin() as conn:
        job_logs.write_lines(conn, [(job_id, 1, line) for line in written])
    with db.connect() as conn:
        read = job_logs.read_lines(conn, job_id, attempt=None, min_level=0, limit=10)
        warnings_only = job_logs.read_lines(conn, job_id, attempt=1, min_level=logging.WARNING,
                                            limit=10)
    assert [LogLine(r.at, r.level, r.logger, r.message) for r in read] == written
    assert read[0].id < read[1].id
    assert [r.message for r in warnings_only] == ["a warning"]
    with db.begin() as conn:  # the foreign key cascades
        conn.execute(delete(Job).where(Job.id == job_id))
    with db.connect() as conn:
        assert job_logs.read_lines(conn, job_id, attempt=None, min_level=0, limit=10) == []

    downgrade(database, "0005")

    assert "job_logs" not in inspect(db).get_table_names()
    upgrade(database)
    assert "job_logs" in inspect(db).get_table_names()
    db.dispose()
