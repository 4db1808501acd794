"""Sweeps: expand a request into jobs, validate them all, queue them; inspect and cancel.

Every generated spec is validated before anything is stored, so a sweep is queued whole or
refused whole, with the first invalid point named.
"""

from __future__ import annotations

import logging
import math
import statistics
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from pydantic import ValidationError
from sqlalchemy import Engine

from optimlab.service.db import job_batches, jobs, listing, sweeps
from optimlab.service.db.dataset_source import SqlDatasetSource
from optimlab.service.db.job_batches import NewJob
from optimlab.service.db.listing import JobFilter
from optimlab.service.db.models import Job, Sweep
from optimlab.service.jobs import checkpoints, queries, quotas
from optimlab.service.jobs.callers import Caller
from optimlab.service.jobs.dispatch import Dispatcher
from optimlab.service.jobs.errors import BrokerUnavailable, InvalidQuery
from optimlab.service.jobs.fusion import FusionPlan, plan_fusion
from optimlab.service.jobs.listing import parse_rank
from optimlab.service.jobs.ownership import sweep_for
from optimlab.service.jobs.submit import choose_queue, count_gpu_workers, refuse_unserved
from optimlab.service.jobs.sweep_spec import PathError, SweepPoint, SweepSpec, expand
from optimlab.service.settings import Settings
from optimlab.worker.engine import SpecError
from optimlab.worker.engine.validation import SpecValidator
from optimlab.worker.spec import JobSpec

log = logging.getLogger(__name__)
ACTIVE = (jobs.QUEUED, jobs.RUNNING)


@dataclass
class SweepView:
    sweep: Sweep
    counts: dict[str, int]
    rank_by: str = "final_loss"
    leaderboard: list[dict[str, Any]] = field(default_factory=list)
    by_point: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> Literal["queued", "running", "finished"]:
        active = self.counts.get(jobs.RUNNING, 0) + self.counts.get(jobs.QUEUED, 0)
        if not active:
            return "finished"
        return "queued" if self.counts.get(jobs.QUEUED, 0) == self.sweep.size else "running"


def submit_sweep(*, db: Engine, dispatcher: Dispatcher, settings: Settings,
                 caller: Caller, request: SweepSpec) -> Sweep:
    """Raise SpecError naming the first invalid point; then nothing is stored or queued."""
    if request.size() > settings.max_sweep_jobs:
        raise SpecError(("axes",), f"the sweep makes {request.size()} jobs; at most "
                                   f"{settings.max_sweep_jobs} are allowed "
                                   "(OPTIMLAB_MAX_SWEEP_JOBS)")
    # One validator for the whole sweep: its points share the problems they have in common.
    validator = SpecValidator(source=SqlDatasetSource(db, caller.sees))
    specs = [(point, _checked(point, request, validator)) for point in _points(request)]
    if not specs:
        raise SpecError(("axes",), "the sweep makes no jobs")
    checked: set[tuple[Any, ...]] = set()  # points share these fields: each asked once
    for point, spec in specs:
        fields = (spec.checkpoint_seconds, spec.checkpoint_every, spec.init_from)
        if fields in checked:
            continue
        try:
            checkpoints.check_spec(spec, db=db, settings=settings, caller=caller)
        except SpecError as exc:
            raise SpecError(("points", point.index), f"point {point.index}: {exc}") from None
        checked.add(fields)
    plan = plan_fusion([spec for _, spec in specs], enabled=request.fuse,
                       max_jobs=settings.max_fused_jobs)
    with db.begin() as conn:
        quotas.check_submit(conn, settings, caller, new_jobs=len(specs))  # whole, or none
        gpus = count_gpu_workers(conn, settings)
        where = ("axes", "device") if "device" in request.axes else ("base", "device")
        for _, spec in specs:
            refuse_unserved(spec, settings, gpu_workers=gpus, loc=where)
        sweep = sweeps.insert_sweep(conn, name=request.name, size=len(specs),
                                    request=request.model_dump(mode="json"),
                                    tags=list(request.tags), owner=caller.owner)
        new = [NewJob(name=spec.name, spec=spec.model_dump(mode="json"),
                      queue=choose_queue(spec, settings, gpu_workers=gpus),
                      sweep_point=point.values) for point, spec in specs]
        ids = job_batches.insert_jobs(conn, new, sweep_id=sweep.id, owner=caller.owner)
        queued = [Queued(job_id, job.queue) for job_id, job in zip(ids, new, strict=True)]
        sweeps.set_fusion(conn, sweep.id, _fusion_record(request.fuse, plan, queued))
    _dispatch(db, dispatcher, sweep.id, [[queued[i] for i in task] for task in plan.tasks]
              + [[queued[i]] for i, _ in plan.alone])
    return sweep


class Queued(NamedTuple):
    """A stored job, as dispatching it needs it."""

    id: uuid.UUID
    queue: str


def _fusion_record(enabled: bool, plan: FusionPlan, queued: list[Queued]) -> dict[str, Any]:
    return {"enabled": enabled,
            "tasks": [[str(queued[i].id) for i in task] for task in plan.tasks],
            "alone": [{"job_id": str(queued[i].id), "reason": reason}
                      for i, reason in plan.alone]}


def _points(request: SweepSpec) -> list[SweepPoint]:
    try:
        return expand(request)
    except PathError as exc:
        raise SpecError(("axes", exc.path), str(exc)) from None


def _checked(point: SweepPoint, request: SweepSpec, validator: SpecValidator) -> JobSpec:
    raw = dict(point.spec)
    raw["name"] = _job_name(request, point)
    raw["tags"] = list(dict.fromkeys([*(raw.get("tags") or []), *request.tags]))
    where = f"point {point.index} ({point.describe()})"
    try:
        spec = JobSpec.model_validate(raw)
        validator.validate(spec)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"]) or "spec"
        raise SpecError(("points", point.index), f"{where}: {path}: {first['msg']}") from None
    except SpecError as exc:
        raise SpecError(("points", point.index), f"{where}: {exc}") from None
    return spec


def _job_name(request: SweepSpec, point: SweepPoint) -> str:
    return f"{request.name or 'sweep'} [{point.describe()}]"[:200]


def _dispatch(db: Engine, dispatcher: Dispatcher, sweep_id: uuid.UUID,
              messages: list[list[Queued]]) -> None:
    """One message per task: a fused task's jobs together, any other job alone. Sent after
    the commit, so a worker never receives the id of a row it cannot see yet."""
    total = sum(len(message) for message in messages)
    sent = 0
    for position, message in enumerate(messages):
        try:
            if len(message) > 1:
                dispatcher.dispatch_fused([str(job.id) for job in message], message[0].queue)
            else:
                dispatcher.dispatch(str(message[0].id), message[0].queue)
        except Exception as exc:
            log.exception("sweep %s: a task could not be queued", sweep_id)
            with db.begin() as conn:
                for unsent in (job for m in messages[position:] for job in m):
                    jobs.fail_job(conn, unsent.id, f"could not be queued: broker unreachable "
                                                   f"({exc})")
            raise BrokerUnavailable(f"the broker is unreachable after {sent} of {total} "
                                    f"jobs: {exc}") from exc
        sent += len(message)


def get_sweep(*, db: Engine, caller: Caller, sweep_id: uuid.UUID,
              rank_by: str = "final_loss", limit: int | None = None) -> SweepView:
    order = _rank_order(rank_by)
    with db.connect() as conn:
        sweep = sweep_for(conn, caller, sweep_id)
        counts = sweeps.status_counts(conn, [sweep_id])[sweep_id]
        ranked = listing.by_summary(conn, JobFilter(sweep_id=sweep_id), order,
                                    limit=limit or sweep.size, offset=0)
    view = SweepView(sweep, counts, rank_by)
    view.leaderboard = [_entry(i + 1, job, order.path) for i, job in enumerate(ranked)]
    view.by_point = _by_point(view.leaderboard, descending=order.descending)
    return view


def _rank_order(rank_by: str) -> listing.SummaryOrder:
    order = parse_rank(rank_by)
    if order is None:
        raise InvalidQuery("rank_by", "rank by a summary field such as final_loss")
    return order


def _entry(rank: int, job: Job, path: tuple[str, ...]) -> dict[str, Any]:
    node: Any = job.summary or {}
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return {"rank": rank, "job_id": str(job.id), "status": job.status,
            "point": job.sweep_point or {}, "seed": job.spec.get("seed", 0), "value": node,
            "outcome": (job.summary or {}).get("outcome")}


def _by_point(leaderboard: list[dict[str, Any]], *, descending: bool) -> list[dict[str, Any]]:
    """The metric over each point's seeds: mean, min, max; points ranked by the mean."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for entry in leaderboard:
        groups.setdefault(repr(sorted(entry["point"].items())), []).append(entry)
    rows = []
    for entries in groups.values():
        values = [e["value"] for e in entries
                  if isinstance(e["value"], int | float) and math.isfinite(e["value"])]
        rows.append({"point": entries[0]["point"], "jobs": [e["job_id"] for e in entries],
                     "seeds": [e["seed"] for e in entries], "values": len(values),
                     "mean": statistics.fmean(values) if values else None,
                     "min": min(values) if values else None,
                     "max": max(values) if values else None})
    present = sorted((r for r in rows if r["mean"] is not None), key=lambda r: r["mean"],
                     reverse=descending)
    return present + [r for r in rows if r["mean"] is None]


def list_sweeps(*, db: Engine, caller: Caller, tag: str | None, limit: int,
                cursor: str | None) -> tuple[list[SweepView], str | None]:
    after = queries.decode_cursor(cursor) if cursor else None
    with db.connect() as conn:
        page = sweeps.list_sweeps(conn, tag=tag, limit=limit + 1, after=after,
                                  owner=caller.scope)
        counts = sweeps.status_counts(conn, [s.id for s in page[:limit]])
    views = [SweepView(s, counts[s.id]) for s in page[:limit]]
    return views, queries.encode_cursor(page[limit - 1]) if len(page) > limit else None


def cancel_sweep(*, db: Engine, caller: Caller, sweep_id: uuid.UUID) -> SweepView:
    """Cancel every queued or running job of the sweep; finished ones keep their results."""
    with db.begin() as conn:
        sweep_for(conn, caller, sweep_id)
        for job_id in sweeps.job_ids(conn, sweep_id, statuses=ACTIVE):
            jobs.cancel_job(conn, job_id)
    return get_sweep(db=db, caller=caller, sweep_id=sweep_id)
