"""The worker keeps the service's limits: it checks a stored spec against the same settings
as the API, and stops a run past its wall time (alone or fused), failing the job but
keeping its points."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine

from optimlab.service.db import jobs, metrics
from optimlab.service.db.models import Job
from optimlab.worker.execution import execute
from tests.conftest import Stack
from tests.seed_table import SEED_SPEC

LONG_SPEC: dict[str, Any] = {**SEED_SPEC, "steps": 50_000_000}


def _insert(db: Engine, spec: dict[str, Any]) -> uuid.UUID:
    with db.begin() as conn:
        return jobs.insert_job(conn, name="t", spec=spec, queue="cpu").id


def _job(db: Engine, job_id: uuid.UUID) -> Job:
    with db.connect() as conn:
        found = jobs.get_job(conn, job_id)
    assert found is not None
    return found


def test_the_worker_checks_a_spec_against_its_settings_limits(db: Engine,
                                                              stack: Stack) -> None:
    # Stored under other limits (or written to the table directly): 20 steps, limit 10.
    job_id = _insert(db, SEED_SPEC)
    settings = stack.settings.model_copy(update={"max_steps": 10})

    execute([str(job_id)], db=db, settings=settings, worker="test-worker")

    failed = _job(db, job_id)
    assert failed.status == jobs.FAILED
    assert failed.error is not None
    assert "steps" in failed.error
    assert "OPTIMLAB_MAX_STEPS" in failed.error


def test_a_run_past_its_wall_time_fails_saying_so_and_keeps_its_metrics(
        db: Engine, stack: Stack) -> None:
    job_id = _insert(db, LONG_SPEC)
    settings = stack.settings.model_copy(update={"max_job_seconds": 0.5,
                                                 "flush_seconds": 0.1})

    execute([str(job_id)], db=db, settings=settings, worker="test-worker")

    failed = _job(db, job_id)
    assert failed.status == jobs.FAILED
    assert failed.error is not None
    assert "wall-time limit of 0.5 s" in failed.error
    assert "OPTIMLAB_MAX_JOB_SECONDS" in failed.error
    assert failed.summary is not None
    assert failed.summary["outcome"] == "stopped"
    assert failed.summary["wall_seconds"] > 0.5
    with db.connect() as conn:
        (losses,) = metrics.read_series(conn, job_id, ["loss"])
    steps_done = failed.summary["steps_done"]
    assert 0 < steps_done < LONG_SPEC["steps"]
    assert losses.steps == list(range(steps_done))
    assert losses.values[0] == 225.0


def test_without_a_wall_time_limit_a_job_runs_to_its_end(db: Engine,
                                                         stack: Stack) -> None:
    job_id = _insert(db, SEED_SPEC)

    execute([str(job_id)], db=db, settings=stack.settings, worker="test-worker")

    assert _job(db, job_id).status == jobs.SUCCEEDED


def test_a_fused_run_past_its_wall_time_fails_each_job_and_keeps_their_metrics(
        db: Engine, stack: Stack) -> None:
    specs = [{**LONG_SPEC, "optimizer": {"name": "SGD", "lr": lr}} for lr in (0.001, 0.002)]
    ids = [_insert(db, spec) for spec in specs]
    settings = stack.settings.model_copy(update={"max_job_seconds": 0.5,
                                                 "flush_seconds": 0.1})

    execute([str(job_id) for job_id in ids], db=db, settings=settings,
                  worker="test-worker")

    for job_id in ids:
        failed = _job(db, job_id)
        assert failed.status == jobs.FAILED
        assert failed.error is not None
        assert "wall-time limit of 0.5 s" in failed.error
        assert failed.summary is not None
        assert failed.summary["outcome"] == "stopped"
        assert failed.summary["fusion"]["fused_with"] == 1  # it stopped fused, not alone
        steps_done = failed.summary["steps_done"]
        assert 0 < steps_done < LONG_SPEC["steps"]
        with db.connect() as conn:
            (losses,) = metrics.read_series(conn, job_id, ["loss"])
        assert losses.steps == list(range(steps_done))
