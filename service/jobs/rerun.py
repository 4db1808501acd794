"""Rerun a job: its spec submitted again as a new job, outside any sweep."""

from __future__ import annotations

import uuid

from pydantic import ValidationError
from sqlalchemy import Engine

from optimlab.service.db.models import Job
from optimlab.service.jobs import ownership, submit
from optimlab.service.jobs.callers import Caller
from optimlab.service.jobs.dispatch import Dispatcher
from optimlab.service.settings import Settings
from optimlab.worker.engine import SpecError
from optimlab.worker.spec import JobSpec


def rerun_job(*, db: Engine, dispatcher: Dispatcher, settings: Settings, caller: Caller,
              job_id: uuid.UUID) -> Job:
    """The new job, validated and dispatched as :func:`submit.submit_job` does for a POST;
    it belongs to the rerun job's owner (an admin rerunning someone's job makes theirs)."""
    stored = ownership.get_job(db=db, caller=caller, job_id=job_id)
    try:
        spec = JobSpec.model_validate(stored.spec)
    except ValidationError as exc:  # stored by an older version of the schema
        first = exc.errors()[0]
        raise SpecError(tuple(first["loc"]), f"the stored spec no longer validates: "
                                             f"{first['msg']}") from None
    heir = Caller(owner=stored.owner, admin=caller.admin)
    return submit.submit_job(db=db, dispatcher=dispatcher, settings=settings,
                             caller=heir, spec=spec)
