"""Migration 0005 packs the points of the old one-row-per-point table, and unpacks them back."""

from __future__ import annotations

import math
import uuid

from sqlalchemy import text

from optimlab.migrations import downgrade, upgrade
from optimlab.service.db import metrics
from optimlab.service.db.connection import make_engine
from tests.migrations.conftest import insert_job, stored_id

# More steps than one chunk of the migration holds (65,536), with a gap and odd values.
STEPS = [*range(66_000), 80_000, 80_005]
VALUES = [math.sin(s) for s in STEPS]
VALUES[3], VALUES[4], VALUES[5] = math.nan, math.inf, -math.inf


def old_rows(url: str, job_id: uuid.UUID) -> list[tuple[str, int, float | None]]:
    db = make_engine(url)
    with db.connect() as conn:
        rows = conn.execute(text("SELECT name, step, value FROM metrics ORDER BY name, step"))
        found = [(str(n), int(s), v) for n, s, v in rows]
    db.dispose()
    return found


def test_points_survive_the_upgrade_and_the_downgrade(database: str) -> None:
    upgrade(database, "0004")
    db = make_engine(database)
    with db.begin() as conn:
        job_id = insert_job(conn)
        conn.execute(text("INSERT INTO metrics (job_id, name, step, value) "
                          "VALUES (:job, :name, :step, :value)"), [
            {"job": stored_id(conn, job_id), "name": name,
             "step": s, "value": None if math.isnan(v) else v}
            for name, every in (("loss", 1), ("val_loss", 1000))
            for s, v in zip(STEPS[::every], VALUES[::every], strict=True)])
    before = old_rows(database, job_id)

    upgrade(database)

    with db.connect() as conn:
        loaded = metrics.load(conn, job_id, ["loss", "val_loss"])
        chunk_rows = conn.scalar(text("SELECT count(*) FROM metric_chunks"))
    for name, every in (("loss", 1), ("val_loss", 1000)):
        steps, values = loaded[name]
        assert steps.tolist() == STEPS[::every]
        assert list(map(repr, values.tolist())) == list(map(repr, VALUES[::every]))
    assert chunk_rows == 3  # the loss in 65,536 points and the rest; val_loss in one

    downgrade(database, "0004")

    assert old_rows(database, job_id) == before
    db.dispose()
