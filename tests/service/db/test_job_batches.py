"""``insert_jobs`` stores what ``insert_job`` stores, job by job, in the given order."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Row, select

from optimlab.service.db import job_batches, jobs, sweeps
from optimlab.service.db.job_batches import NewJob
from optimlab.service.db.models import Job, JobTag
from tests.seed_table import SEED_SPEC

SKIPPED = {"id", "created_at", "sweep_id"}


def test_a_batch_stores_the_rows_one_by_one_inserts_store(db: Engine) -> None:
    specs = [{**SEED_SPEC, "seed": seed, "tags": tags}
             for seed, tags in ((0, ["b", "a", "b"]), (1, []), (2, ["a"]))]
    new = [NewJob(name=f"job {i}", spec=spec, queue=f"q{i % 2}",
                  sweep_point={"seed": spec["seed"]}) for i, spec in enumerate(specs)]
    with db.begin() as conn:
        batch = sweeps.insert_sweep(conn, name="batch", request={}, size=3, tags=[])
        alone = sweeps.insert_sweep(conn, name="alone", request={}, size=3, tags=[])
        ids = job_batches.insert_jobs(conn, new, sweep_id=batch.id)
        for job in new:
            jobs.insert_job(conn, name=job.name, spec=job.spec, queue=job.queue,
                            sweep_id=alone.id, sweep_point=job.sweep_point)
        assert job_batches.insert_jobs(conn, [], sweep_id=batch.id) == []
    with db.connect() as conn:
        stored = {sweep.id: conn.execute(select(Job.__table__).where(Job.sweep_id == sweep.id)
                                         .order_by(Job.created_at, Job.id)).all()
                  for sweep in (batch, alone)}
        tags = {job_id: sorted(conn.scalars(select(JobTag.tag).where(JobTag.job_id == job_id)))
                for job_id in ids}
    assert [row.id for row in stored[batch.id]] == ids
    assert [_comparable(row) for row in stored[batch.id]] == \
        [_comparable(row) for row in stored[alone.id]]
    assert [tags[i] for i in ids] == [["a", "b"], [], ["a"]]
    assert {row.status for row in stored[batch.id]} == {jobs.QUEUED}


def _comparable(row: Row[Any]) -> dict[str, Any]:
    return {key: value for key, value in row._mapping.items() if key not in SKIPPED}
