"""Rerun a job: its spec submitted again as a new job, outside any sweep."""

from __future__ import annotations

import uuid

from pydantic import ValidationError
from sqlalchemy import Engine

from optimlab.service.db.models import Job
from optimlab.service.jobs import queries, submit
from optimlab.service.jobs.dispatch import Dispatcher
from optimlab.service.settings import Settings
from optimlab.worker.engine import SpecError
from optimlab.worker.spec import JobSpec


def rerun_job(*, engine: Engine, dispatcher: Dispatcher, settings: Settings,
              job_id: uuid.UUID) -> Job:
    """The new job, validated and dispatched as :func:`submit.submit_job` does for a POST."""
    stored = queries.get_job(engine=engine, job_id=job_id)
    try:
        spec = JobSpec.model_validate(stored.spec)
    except ValidationError as exc:  # stored by an older version of the schema
        first = exc.errors()[0]
        raise SpecError(tuple(first["loc"]), f"the stored spec no longer validates: "
                                             f"{first['msg']}") from None
    return submit.submit_job(engine=engine, dispatcher=dispatcher, settings=settings, spec=spec)
