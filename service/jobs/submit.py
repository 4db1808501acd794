"""Submit a job: validate its spec, store it as queued, send it to a worker's queue."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import Connection, Engine

from optimlab.service.db import jobs, workers
from optimlab.service.db.dataset_source import SqlDatasetSource
from optimlab.service.db.models import Job
from optimlab.service.jobs import checkpoints, quotas
from optimlab.service.jobs.callers import Caller
from optimlab.service.jobs.dispatch import Dispatcher
from optimlab.service.jobs.errors import BrokerUnavailable
from optimlab.service.settings import Settings
from optimlab.worker.engine import SpecError
from optimlab.worker.engine.validation import validate_spec
from optimlab.worker.engine.warmup import warm_up as _warm_up_engine
from optimlab.worker.spec import JobSpec

log = logging.getLogger(__name__)


def warm_up() -> None:
    """Pay torch's lazy imports and first calls now, so that the first POST does not."""
    _warm_up_engine()


def submit_job(*, db: Engine, dispatcher: Dispatcher, settings: Settings, caller: Caller,
               spec: JobSpec) -> Job:
    """Raise SpecError for a spec the engine cannot run, QuotaExceeded past the owner's
    quotas; nothing is stored or queued then. The job belongs to the caller's owner."""
    validate_spec(spec, source=SqlDatasetSource(db, caller.sees))
    checkpoints.check_spec(spec, db=db, settings=settings, caller=caller)
    with db.begin() as conn:
        quotas.check_submit(conn, settings, caller, new_jobs=1)
        gpu_workers = count_gpu_workers(conn, settings)
        refuse_unserved(spec, settings, gpu_workers=gpu_workers)
        queue = choose_queue(spec, settings, gpu_workers=gpu_workers)
        job = jobs.insert_job(conn, name=spec.name, spec=spec.model_dump(mode="json"),
                              queue=queue, owner=caller.owner)
    # Sent after the commit, so a worker never receives the id of a row it cannot see yet.
    try:
        dispatcher.dispatch(str(job.id), queue)
    except Exception as exc:
        log.exception("job %s could not be queued", job.id)
        with db.begin() as conn:
            jobs.fail_job(conn, job.id, f"could not be queued: broker unreachable ({exc})")
        raise BrokerUnavailable(f"the broker is unreachable: {exc}") from exc
    return job


def choose_queue(spec: JobSpec, settings: Settings, *, gpu_workers: int) -> str:
    """cuda jobs go to the gpu queue; auto jobs too while a GPU worker is alive."""
    wants_gpu = spec.device == "cuda" or (spec.device == "auto" and gpu_workers > 0)
    return settings.queue("gpu" if wants_gpu else "cpu")


def refuse_unserved(spec: JobSpec, settings: Settings, *, gpu_workers: int,
                    loc: tuple[str, ...] = ("device",)) -> None:
    """A cuda job with no GPU worker alive would wait forever: refuse it now.

    CPU (and auto) jobs queue without a worker, as ever: the API is often started first.
    """
    if spec.device == "cuda" and gpu_workers == 0:
        raise SpecError(loc, f"cuda needs a GPU worker, and no live worker serves the queue "
                             f"{settings.queue('gpu')!r}: start one (`optimlab worker --gpus "
                             "all` on a host with a GPU) or ask for device cpu or auto")


def count_gpu_workers(conn: Connection, settings: Settings) -> int:
    within = timedelta(seconds=3 * settings.heartbeat_seconds)
    live = workers.live_workers(conn, within=within)
    return sum(settings.queue("gpu") in w.queues.split(",") for w in live)
