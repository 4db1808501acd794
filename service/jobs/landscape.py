"""Gather a loss landscape: check the jobs minimise one objective of two numbers, read their
parameters' paths downsampled.

Only an expression model with exactly two parameters of one number each, minimised itself
(loss "none", no input columns), has a landscape that is a picture: a function of the
plane. Anything else is refused with the reason.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine

from optimlab.service.db import compare as stats
from optimlab.service.db.models import Job
from optimlab.service.jobs.callers import Caller
from optimlab.service.jobs.compare import existing_jobs, flatten
from optimlab.service.jobs.errors import InvalidQuery
from optimlab.service.jobs.ownership import job_for
from optimlab.service.jobs.plots import describe_optimizer, label
from optimlab.service.plots.landscape import LandscapeError, Objective, Path, evaluate_grid
from optimlab.worker.engine.expression import ExpressionError, parse_expression

MAX_POINTS = 2_000


@dataclass(frozen=True)
class Landscape:
    objective: Objective
    paths: list[Path]
    title: str


def job_landscape(*, db: Engine, caller: Caller, job_id: uuid.UUID,
                  max_points: int) -> Landscape:
    with db.connect() as conn:
        job = job_for(conn, caller, job_id)
        objective = objective_of(job, field="job_id")
        path = read_path(conn, job, objective, max_points=max_points,
                         label=describe_optimizer(job.spec))
    return Landscape(objective, [path], job.name or objective.expression.source)


def compare_landscape(*, db: Engine, caller: Caller, job_ids: list[uuid.UUID],
                      max_points: int) -> Landscape:
    """Every job's path over their shared objective, labelled by what differs."""
    with db.connect() as conn:
        chosen = existing_jobs(conn, caller, job_ids)
        objectives = [objective_of(job, field="jobs") for job in chosen]
        first = objectives[0]
        for job, objective in zip(chosen, objectives, strict=True):
            if (objective.expression.source.strip(), objective.x, objective.y) != (
                    first.expression.source.strip(), first.x, first.y):
                raise InvalidQuery("jobs", f"job {job.id} minimises another objective "
                                           f"({objective.expression.source!r} over "
                                           f"{objective.x}, {objective.y}); a landscape "
                                           f"overlays the paths of one objective")
        labels = _labels(chosen)
        paths = [read_path(conn, job, first, max_points=max_points, label=labels[job.id])
                 for job in chosen]
    return Landscape(first, paths, first.expression.source)


def objective_of(job: Job, *, field: str) -> Objective:
    """The job's objective as a function of its two parameters, or InvalidQuery saying why
    it has no landscape."""
    def refuse(reason: str) -> InvalidQuery:
        return InvalidQuery(field, f"job {job.id} has no landscape to draw: {reason}")

    model = job.spec.get("model") or {}
    if model.get("kind") != "expression":
        raise refuse(f"its model is {model.get('kind')!r}; a landscape needs an "
                     "expression model")
    parameters: dict[str, Any] = model.get("parameters") or {}
    sizes = {name: _count(value) for name, value in parameters.items()}
    if len(sizes) != 2 or set(sizes.values()) != {1}:
        shown = ", ".join(f"{n} ({s} number{'s' if s != 1 else ''})" for n, s in sizes.items())
        raise refuse(f"a landscape needs exactly two parameters of one number each; "
                     f"the model has {shown}")
    loss = _loss(job.spec)
    if loss != "none":
        raise refuse(f"it trains with loss {loss!r} against data; a landscape draws an "
                     "objective minimised itself (loss 'none')")
    x, y = parameters
    try:
        expression = parse_expression(model["expression"], allowed_names=[x, y])
    except ExpressionError as exc:
        raise refuse(f"the objective is not a function of {x} and {y} alone ({exc})") from None
    objective = Objective(expression=expression, x=x, y=y)
    try:  # on a tiny grid first: an objective that cannot be drawn is refused, not a 500
        evaluate_grid(objective, (0.0, 1.0), (0.0, 1.0), resolution=2)
    except LandscapeError as exc:
        raise refuse(str(exc)) from None
    return objective


def read_path(conn: Connection, job: Job, objective: Objective, *, max_points: int,
              label: str) -> Path:
    """The initial point, each bucket's mean position, and the last recorded position.

    Parameters are recorded after each step's update, so the path starts at the spec's
    initial values; the last point is read exactly (a bucket mean would cut the end short).
    """
    names = [f"param.{objective.x}", f"param.{objective.y}"]
    last = stats.last_step(conn, [job.id], names[0])
    parameters = job.spec["model"]["parameters"]
    xs: list[float | None] = [_first_number(parameters[objective.x])]
    ys: list[float | None] = [_first_number(parameters[objective.y])]
    if last is not None:
        buckets = stats.plan_buckets(0, last, max_points)
        end = stats.plan_buckets(last, last, 1)
        for name, values in zip(names, (xs, ys), strict=True):
            values.extend(stats.bucket_stats(conn, job.id, name, buckets).mean)
            values.extend(stats.bucket_stats(conn, job.id, name, end).mean)
    return Path(label=label, xs=xs, ys=ys)


def _labels(chosen: Sequence[Job]) -> dict[uuid.UUID, str]:
    flat = {job.id: flatten(job.spec) for job in chosen}
    keys = list(dict.fromkeys(k for f in flat.values() for k in f))
    varying = [k for k in keys if k not in ("name", "tags")
               and len({repr(f.get(k)) for f in flat.values()}) > 1]
    return {job.id: label({k: flat[job.id].get(k) for k in varying})
            or job.name or describe_optimizer(job.spec) for job in chosen}


def _loss(spec: dict[str, Any]) -> str:
    """The loss the engine trains with: an expression without targets minimises itself."""
    if spec.get("loss"):
        return str(spec["loss"])
    data = spec.get("data") or {}
    has_targets = data.get("kind", "inline") != "inline" or data.get("targets") is not None
    return "mse" if has_targets else "none"


def _count(value: Any) -> int:
    return sum(_count(v) for v in value) if isinstance(value, list) else 1


def _first_number(value: Any) -> float | None:
    while isinstance(value, list):
        value = value[0] if value else None
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None
