"""A fused run whose database is cut for seconds mid-run, in this process (the task body
called directly, its Engine through a TCP proxy): it stays fused, and every job's history
is its uninterrupted run's, each point once."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from optimlab.service.db import jobs, metrics
from optimlab.service.db.connection import make_engine
from optimlab.worker.execution import execute
from tests.conftest import Stack
from tests.e2e.test_outages import assert_uninterrupted_history
from tests.seed_table import SEED_SPEC
from tests.stacks import wait_for
from tests.tcp_proxy import tcp_proxy

SPECS = [{**SEED_SPEC, "steps": 10_000,
          "optimizer": {"name": "SGD", "lr": lr, "momentum": momentum}}
         for lr in (0.001, 0.01) for momentum in (0.0, 0.9)]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("stack", ["postgres"], indirect=True)  # a TCP proxy in front of it
def test_a_fused_run_rides_out_a_database_cut(db: Engine, stack: Stack) -> None:
    with db.begin() as conn:
        ids = [jobs.insert_job(conn, name=f"f{i}", spec=spec, queue="cpu").id
               for i, spec in enumerate(SPECS)]
    database = make_url(stack.settings.database)
    assert database.host is not None
    assert database.port is not None
    with tcp_proxy((database.host, database.port)) as proxy:
        proxied = make_engine(database.set(host="127.0.0.1", port=proxy.port)
                              .render_as_string(hide_password=False))
        run = threading.Thread(target=execute, args=([str(i) for i in ids],), kwargs={
            "db": proxied, "settings": stack.settings, "worker": "test-worker"})
        run.start()
        wait_for(lambda: stored(db, ids[0]), timeout=60, what="the first fused batch")
        proxy.cut()
        time.sleep(3)
        proxy.restore()
        run.join(timeout=90)
        proxied.dispose()

    assert not run.is_alive()
    assert proxy.refused > 0, "the run never noticed the cut"
    with db.connect() as conn:
        done = [jobs.get_job(conn, job_id) for job_id in ids]
    for job, spec in zip(done, SPECS, strict=True):
        assert job is not None
        assert (job.status, job.attempt) == (jobs.SUCCEEDED, 1), job.error
        assert job.summary is not None
        assert job.summary["fusion"]["fused_with"] == len(SPECS) - 1  # not run alone again
        assert_uninterrupted_history(db, str(job.id), spec)


def stored(db: Engine, job_id: uuid.UUID) -> bool:
    with db.connect() as conn:
        return bool(metrics.series_names(conn, job_id))
