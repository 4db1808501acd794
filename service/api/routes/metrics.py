"""/v1/jobs/{id}/metrics: a job's metric histories as JSON or CSV."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import StreamingResponse

from optimlab.service.api.deps import EngineDep
from optimlab.service.api.responses import OrjsonResponse
from optimlab.service.api.schemas import ErrorPublic, MetricsPublic, ValidationErrorPublic
from optimlab.service.jobs import queries

router = APIRouter(prefix="/v1/jobs", tags=["metrics"],
                   responses={422: {"model": ValidationErrorPublic,
                                    "description": "A field is invalid; `message` names it"}})
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "No job with this id"}}

NamesQuery = Annotated[str | None, Query(
    description="Comma-separated series names, e.g. loss,lr,param.x; default: all.",
    max_length=10_000)]


def _names(names: str | None) -> list[str] | None:
    return [n.strip() for n in names.split(",") if n.strip()] if names else None


@router.get("/{job_id}/metrics", response_class=OrjsonResponse, response_model=None,
            responses={200: {"model": MetricsPublic}, **NOT_FOUND})
def get_metrics(job_id: uuid.UUID, engine: EngineDep, names: NamesQuery = None) -> OrjsonResponse:
    """Every stored point of each series (so far, while the job runs); NaN and inf are null."""
    series = queries.read_metrics(engine=engine, job_id=job_id, names=_names(names))
    return OrjsonResponse({
        "job_id": job_id,
        "series": [{"name": s.name, "steps": s.steps, "values": s.values} for s in series],
    })


@router.get("/{job_id}/metrics.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}}, **NOT_FOUND})
def get_metrics_csv(job_id: uuid.UUID, engine: EngineDep,
                    names: NamesQuery = None) -> StreamingResponse:
    """The same points as CSV rows ``step,name,value``, streamed."""
    wanted = queries.metric_names(engine=engine, job_id=job_id, names=_names(names))
    return StreamingResponse(_csv(engine, job_id, wanted), media_type="text/csv",
                             headers={"Content-Disposition":
                                      f'attachment; filename="{job_id}-metrics.csv"'})


def _csv(engine: EngineDep, job_id: uuid.UUID, names: list[str]) -> Iterator[str]:
    yield "step,name,value\n"
    lines: list[str] = []
    for name, step, value in queries.stream_metrics(engine=engine, job_id=job_id, names=names):
        # repr() is the shortest text that reads back as the same float
        lines.append(f"{step},{_csv_field(name)},{value!r}\n")
        if len(lines) >= 5_000:
            yield "".join(lines)
            lines.clear()
    yield "".join(lines)


def _csv_field(text: str) -> str:
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(c in text for c in ',"\n') else text
