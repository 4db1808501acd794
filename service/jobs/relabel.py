"""Change a job's name and tags: in its row, its spec and its job_tags rows at once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Engine

from optimlab.service.db import jobs
from optimlab.service.db.models import Job
from optimlab.service.jobs.callers import Caller
from optimlab.service.jobs.ownership import job_for


def relabel_job(*, db: Engine, caller: Caller, job_id: uuid.UUID, name: str | None,
                tags: Sequence[str] | None) -> Job:
    """Set what is given (None: unchanged); tags keep their order, without repeats.

    Allowed in any state: a run reads its spec when it starts and never writes it back.
    """
    with db.begin() as conn:
        job = job_for(conn, caller, job_id, lock=True)
        spec = dict(job.spec)
        if name is not None:
            spec["name"] = name
        if tags is not None:
            spec["tags"] = list(dict.fromkeys(tags))
        jobs.relabel_job(conn, job_id, name=job.name if name is None else name, spec=spec)
        changed = jobs.get_job(conn, job_id)
    assert changed is not None
    return changed
