"""The lookups that enforce ownership: another owner's job, sweep or data set is "not
found", exactly like an id that names nothing, so that ids leak nothing.

Every use case that takes an id goes through one of these; a new route or use case (a
checkpoint download, a spec's ``init_from``) calls :func:`job_for` and is covered.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Connection, Engine

from optimlab.service.db import datasets, jobs, sweeps
from optimlab.service.db.models import Job, StoredDataset, Sweep
from optimlab.service.jobs.callers import Caller
from optimlab.service.jobs.errors import DatasetNotFound, JobNotFound, SweepNotFound


def job_for(conn: Connection, caller: Caller, job_id: uuid.UUID, *,
            lock: bool = False) -> Job:
    """The job, if ``caller`` may see it; else JobNotFound (``lock``: as jobs.get_job)."""
    job = jobs.get_job(conn, job_id, lock=lock)
    if job is None or not caller.sees(job.owner):
        raise JobNotFound(job_id)
    return job


def get_job(*, db: Engine, caller: Caller, job_id: uuid.UUID) -> Job:
    with db.connect() as conn:
        return job_for(conn, caller, job_id)


def jobs_for(conn: Connection, caller: Caller,
             job_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Job]:
    """The jobs of these ids that exist and ``caller`` may see (the others are missing)."""
    found = jobs.get_jobs(conn, list(job_ids))
    return {job_id: job for job_id, job in found.items() if caller.sees(job.owner)}


def sweep_for(conn: Connection, caller: Caller, sweep_id: uuid.UUID) -> Sweep:
    sweep = sweeps.get_sweep(conn, sweep_id)
    if sweep is None or not caller.sees(sweep.owner):
        raise SweepNotFound(sweep_id)
    return sweep


def dataset_for(conn: Connection, caller: Caller, dataset_id: str) -> StoredDataset:
    stored = datasets.get_dataset(conn, dataset_id)
    if stored is None or not caller.sees(stored.owner):
        raise DatasetNotFound(dataset_id)
    return stored
