"""Gather what the history and comparison plots draw, downsampled as they are read.

A job's series are read as per-bucket mean, min and max (``db.compare.bucket_stats``), so
a history of a million steps costs ``max_points`` rows per series, never the whole of it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine

from optimlab.service.db import compare as stats
from optimlab.service.db.models import Job
from optimlab.service.jobs import compare
from optimlab.service.jobs.callers import Caller
from optimlab.service.jobs.ownership import job_for
from optimlab.service.plots import style
from optimlab.service.plots.comparison import Curve
from optimlab.service.plots.history import Band, History

LR = "lr"


def job_history(*, db: Engine, caller: Caller, job_id: uuid.UUID, names: list[str],
                max_points: int) -> History:
    """The named series of one job (and its lr) on at most ``max_points`` shared buckets."""
    wanted = list(dict.fromkeys(names))
    read = [*wanted, LR] if LR not in wanted else wanted
    with db.connect() as conn:
        job = job_for(conn, caller, job_id)
        last = [step for name in read
                if (step := stats.last_step(conn, [job_id], name)) is not None]
        buckets = stats.plan_buckets(0, max(last, default=-1), max_points)
        found = {name: stats.bucket_stats(conn, job_id, name, buckets) for name in read}
    series = {name: _band(found[name]) for name in wanted if any(found[name].points)}
    missing = [name for name in wanted if name not in series]
    summary = job.summary or {}
    return History(
        title=job.name or f"job {job.id}", starts=buckets.starts, bucket_width=buckets.width,
        series=series, lr=_band(found[LR]) if LR not in wanted else None,
        subtitle=f"{describe_optimizer(job.spec)} · {_status(job)}",
        diverged_at=summary.get("diverged_at"),
        notes=[f"no points: {', '.join(missing)}"] if missing else [])


def compare_curves(*, db: Engine, caller: Caller, job_ids: list[uuid.UUID], metric: str,
                   max_points: int, band: compare.Band) -> tuple[compare.Comparison, list[Curve]]:
    """The comparison of ``compare_jobs`` as curves: one per seed group, labelled by what
    differs between the groups."""
    result = compare.compare_jobs(db=db, caller=caller, job_ids=job_ids, metric=metric,
                                  max_points=max_points, rank_by="-created_at", band=band)
    by_id = {job["id"]: job for job in result.jobs}
    curves = []
    for group in result.groups:
        members = [by_id[i] for i in group["jobs"]]
        first = members[0]
        if len(members) == 1:
            curves.append(Curve(label=label(first["differs"]) or _name(first),
                                mean=first["values"], low=first["min"], high=first["max"]))
            continue
        text = label(group["differs"]) or _name(first)
        curves.append(Curve(label=f"{text} ({len(members)} seeds)", mean=group["mean"],
                            low=group["low"], high=group["high"],
                            members=[m["values"] for m in members]))
    return result, curves


def label(differs: Mapping[str, Any]) -> str:
    """The fields that tell a curve apart, names (``optimizer.name``) first; a field a spec
    leaves out (None: another job sets it) says nothing about this one."""
    present = {k: v for k, v in differs.items() if v is not None}
    ordered = sorted(present, key=lambda k: (not k.endswith(".name"), list(present).index(k)))
    return style.describe({k: present[k] for k in ordered})


def describe_optimizer(spec: Mapping[str, Any]) -> str:
    """``SGD lr=0.001, momentum=0.9``."""
    options = dict(spec.get("optimizer") or {})
    name = options.pop("name", "?")
    return f"{name} {style.describe(options)}".strip()


def _status(job: Job) -> str:
    outcome = (job.summary or {}).get("outcome")
    return f"{job.status} ({outcome})" if outcome and outcome != job.status else job.status


def _name(job: Mapping[str, Any]) -> str:
    return str(job["name"] or job["id"])


def _band(found: stats.BucketStats) -> Band:
    return Band(mean=found.mean, low=found.minimum, high=found.maximum)
