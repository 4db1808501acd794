"""/v1/compare: several jobs' histories on shared step buckets, seed groups, a ranking."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from optimlab.service.api.deps import CallerDep, DbDep
from optimlab.service.api.responses import OrjsonResponse
from optimlab.service.api.schemas.common import ErrorPublic, ValidationErrorPublic
from optimlab.service.api.schemas.comparison import ComparisonPublic
from optimlab.service.jobs import compare
from optimlab.service.jobs.listing import SORT_KEYS

router = APIRouter(prefix="/v1/compare", tags=["compare"])
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": ComparisonPublic},
    404: {"model": ErrorPublic, "description": "Some ids name no job; `detail` lists them"},
    422: {"model": ValidationErrorPublic, "description": "A parameter is invalid"}}

JobsQuery = Annotated[str, Query(
    max_length=20_000, pattern=compare.JOB_IDS_PATTERN,
    description="Comma-separated job ids (at most 200).")]
MetricQuery = Annotated[str, Query(min_length=1, max_length=200,
                                   description="The series to align, e.g. loss, val_loss.")]
MaxPointsQuery = Annotated[int, Query(ge=1, le=10_000,
                                      description="At most this many step buckets.")]
RankQuery = Annotated[str, Query(
    max_length=100, json_schema_extra={"enum": SORT_KEYS},
    description="A summary field to rank by (best_loss, -steps_per_second, "
                "evaluation.val_accuracy...); - is descending.")]


@router.get("", response_class=OrjsonResponse, response_model=None, responses=RESPONSES)
def compare_jobs(db: DbDep, caller: CallerDep, jobs: JobsQuery,
                 metric: MetricQuery = "loss",
                 max_points: MaxPointsQuery = 500, rank_by: RankQuery = "final_loss",
                 band: compare.Band = "minmax") -> OrjsonResponse:
    """The metric of every job averaged over the same step buckets (shared by all of them),
    jobs that differ only in seed grouped into a mean with a band, and the summaries ranked."""
    job_ids = compare.parse_ids(jobs)
    result = compare.compare_jobs(db=db, caller=caller, job_ids=job_ids, metric=metric,
                                  max_points=max_points, rank_by=rank_by, band=band)
    return OrjsonResponse(result.as_dict())
