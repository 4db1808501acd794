"""Compare jobs: one metric on shared step buckets, seed groups with a band, ranked summaries.

Jobs whose specs are equal except for ``seed`` (and the cosmetic ``name`` and ``tags``)
form a group: its curve is the mean of its members' bucket means, with a band (min-max
or mean ± one standard deviation across the members); each member stays in ``jobs``.
"""

from __future__ import annotations

import math
import statistics
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from sqlalchemy import Connection, Engine

from optimlab.service.db import compare
from optimlab.service.db.models import Job
from optimlab.service.jobs.callers import Caller
from optimlab.service.jobs.errors import InvalidQuery, JobNotFound
from optimlab.service.jobs.listing import parse_rank
from optimlab.service.jobs.ownership import jobs_for

MAX_JOBS = 200
COSMETIC = ("seed", "name", "tags")
Band = Literal["minmax", "std"]


class UnknownJobs(JobNotFound):
    def __init__(self, missing: list[str]) -> None:
        LookupError.__init__(self, f"no such jobs: {', '.join(missing)}")
        self.missing = missing


@dataclass
class Comparison:
    metric: str
    rank_by: str
    steps: list[int]
    bucket_width: int
    jobs: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    ranking: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "steps": self.steps, "bucket_width": self.bucket_width,
                "method": "mean per bucket (non-finite values left out)",
                "rank_by": self.rank_by,
                "jobs": self.jobs, "groups": self.groups, "ranking": self.ranking}


def compare_jobs(*, db: Engine, caller: Caller, job_ids: list[uuid.UUID], metric: str,
                 max_points: int, rank_by: str, band: Band) -> Comparison:
    order = parse_rank(rank_by)  # validated before any work
    with db.connect() as conn:
        chosen = existing_jobs(conn, caller, job_ids)
        hi = compare.last_step(conn, job_ids, metric)
        buckets = compare.plan_buckets(0, -1 if hi is None else hi, max_points)
        stats = {job.id: compare.bucket_stats(conn, job.id, metric, buckets) for job in chosen}
    differences = _differences(chosen)
    result = Comparison(metric=metric, rank_by=rank_by, steps=buckets.starts,
                        bucket_width=buckets.width)
    for job in chosen:
        s = stats[job.id]
        result.jobs.append({
            "id": str(job.id), "name": job.name, "status": job.status,
            "seed": job.spec.get("seed", 0), "differs": differences[job.id],
            "values": s.mean, "min": s.minimum, "max": s.maximum, "summary": job.summary})
    result.groups = _groups(chosen, stats, band, differences)
    result.ranking = _ranking(chosen, order.path if order else ("created_at",),
                              descending=bool(order and order.descending))
    return result


def existing_jobs(conn: Connection, caller: Caller, job_ids: list[uuid.UUID]) -> list[Job]:
    """The jobs, in the order given; UnknownJobs names every id that has none (or that
    the caller may not see)."""
    found = jobs_for(conn, caller, job_ids)
    missing = [str(i) for i in job_ids if i not in found]
    if missing:
        raise UnknownJobs(missing)
    return [found[i] for i in job_ids]


_UUID = "[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}"
# What parse_ids reads, for the OpenAPI document: ids separated by commas (and spaces).
JOB_IDS_PATTERN = f"^ *{_UUID} *(, *{_UUID} *)*,? *$"


def parse_ids(text: str, field: str = "jobs") -> list[uuid.UUID]:
    """Comma-separated job ids, each once, in the order given."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise InvalidQuery(field, "give at least one job id")
    ids = []
    for part in parts:
        try:
            ids.append(uuid.UUID(part))
        except ValueError:
            raise InvalidQuery(field, f"{part[:80]!r} is not a job id") from None
    unique = list(dict.fromkeys(ids))
    if len(unique) > MAX_JOBS:
        raise InvalidQuery(field, f"at most {MAX_JOBS} jobs at once, got {len(unique)}")
    return unique


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A spec as dotted paths: {"optimizer.lr": 0.01, "model.hidden": [64], ...}."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


def _differences(chosen: list[Job]) -> dict[uuid.UUID, dict[str, Any]]:
    """For each job, the spec fields whose values are not the same in every job."""
    flat = {job.id: flatten(job.spec) for job in chosen}
    keys = sorted({k for f in flat.values() for k in f})
    varying = [k for k in keys if k not in ("name", "tags")
               and len({_key(f.get(k)) for f in flat.values()}) > 1]
    return {job_id: {k: f.get(k) for k in varying} for job_id, f in flat.items()}


def _key(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _groups(chosen: list[Job], stats: dict[uuid.UUID, compare.BucketStats], band: Band,
            differences: dict[uuid.UUID, dict[str, Any]]) -> list[dict[str, Any]]:
    members: dict[bytes, list[Job]] = {}
    for job in chosen:
        spec = {k: v for k, v in job.spec.items() if k not in COSMETIC}
        members.setdefault(_key(spec), []).append(job)
    groups = []
    for group in members.values():
        columns = list(zip(*(stats[j.id].mean for j in group), strict=True))
        mean: list[float | None] = []
        low: list[float | None] = []
        high: list[float | None] = []
        for column in columns:
            values = [v for v in column if v is not None and math.isfinite(v)]
            if not values:
                mean.append(None)
                low.append(None)
                high.append(None)
                continue
            centre = statistics.fmean(values)
            spread = statistics.pstdev(values) if band == "std" else 0.0
            mean.append(centre)
            low.append(centre - spread if band == "std" else min(values))
            high.append(centre + spread if band == "std" else max(values))
        groups.append({"jobs": [str(j.id) for j in group],
                       "seeds": [j.spec.get("seed", 0) for j in group],
                       "differs": {k: v for k, v in differences[group[0].id].items()
                                   if k != "seed"},
                       "mean": mean, "low": low, "high": high, "band": band})
    return groups


def _ranking(chosen: list[Job], path: tuple[str, ...], *,
             descending: bool) -> list[dict[str, Any]]:
    def value(job: Job) -> Any:
        if path == ("created_at",):
            return job.created_at.timestamp()
        node: Any = job.summary or {}
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        return node if isinstance(node, int | float) and math.isfinite(node) else None

    present = [j for j in chosen if value(j) is not None]
    absent = [j for j in chosen if value(j) is None]
    ordered = sorted(present, key=value, reverse=descending) + absent
    return [{"rank": i + 1, "id": str(j.id), "name": j.name, "value": value(j),
             "summary": j.summary} for i, j in enumerate(ordered)]
