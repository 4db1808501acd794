"""Pictures as SVG or PNG: a job's history, a comparison, a sweep, a loss landscape.

Plain ``def`` endpoints: FastAPI runs them in its thread pool, so drawing (tens to
hundreds of milliseconds of matplotlib) never blocks the event loop.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from matplotlib.figure import Figure
from starlette.responses import Response

from optimlab.service.api.deps import CallerDep, DbDep
from optimlab.service.api.schemas.common import ErrorPublic, ValidationErrorPublic
from optimlab.service.jobs import compare, landscape, plots, sweep_plots
from optimlab.service.jobs.errors import InvalidQuery
from optimlab.service.plots.comparison import draw_comparison
from optimlab.service.plots.history import draw_history
from optimlab.service.plots.landscape import RESOLUTION, draw_landscape
from optimlab.service.plots.render import MEDIA_TYPES, Format, to_bytes
from optimlab.service.plots.sweep import draw_sweep

MAX_SERIES = 10

router = APIRouter(tags=["plots"], responses={
    200: {"content": {media: {} for media in MEDIA_TYPES.values()},
          "description": "The picture, as the path's extension says"},
    422: {"model": ValidationErrorPublic,
          "description": "A parameter is invalid, or the job(s) cannot be drawn so; "
                         "`message` says why"}})
JOB_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "No job with this id"}}
JOBS_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "Some ids name no job; `detail` lists them"}}
SWEEP_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "No sweep with this id"}}

MetricsQuery = Annotated[str, Query(
    min_length=1, max_length=2_000,
    description=f"Comma-separated series to draw (at most {MAX_SERIES}), e.g. loss,val_loss.")]
MaxPointsQuery = Annotated[int, Query(
    ge=10, le=10_000, description="At most this many step buckets: each is drawn as its mean, "
                                  "with its min–max as a band.")]
LogQuery = Annotated[bool | None, Query(
    description="Log-scale the y axis; default: yes for losses and norms whose values are "
                "all positive.")]
PathPointsQuery = Annotated[int, Query(
    ge=10, le=10_000, description="At most this many points per path, each the mean position "
                                  "over a bucket of steps (the start and end are exact).")]
BandQuery = Annotated[compare.Band, Query(
    description="The band around a seed group's mean: min–max or ± one standard deviation "
                "across its seeds.")]
JobsQuery = Annotated[str, Query(max_length=20_000, pattern=compare.JOB_IDS_PATTERN,
                                 description="Comma-separated job ids (at most 200).")]
MetricQuery = Annotated[str, Query(min_length=1, max_length=200,
                                   description="The series to compare, e.g. loss, val_loss.")]
ResolutionQuery = Annotated[int, Query(
    ge=20, le=600, description="Grid points per side on which the objective is evaluated.")]


def _image(figure: Figure, fmt: Format, filename: str) -> Response:
    return Response(to_bytes(figure, fmt), media_type=MEDIA_TYPES[fmt],
                    headers={"Content-Disposition": f'inline; filename="{filename}.{fmt}"'})


def _series(text: str) -> list[str]:
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise InvalidQuery("metrics", "name at least one series, e.g. loss")
    if len(names) > MAX_SERIES:
        raise InvalidQuery("metrics", f"at most {MAX_SERIES} series in one plot")
    return names


@router.get("/v1/jobs/{job_id}/plot.{fmt}", response_class=Response, responses=JOB_NOT_FOUND)
def plot_job(job_id: uuid.UUID, fmt: Format, db: DbDep, caller: CallerDep,
             metrics: MetricsQuery = "loss",
             max_points: MaxPointsQuery = 1000, log: LogQuery = None) -> Response:
    """The job's series over steps, downsampled to bucket means with their
    min–max band; the learning rate on a second axis when it varies; a diverged run's step
    marked."""
    history = plots.job_history(db=db, caller=caller, job_id=job_id, names=_series(metrics),
                                max_points=max_points)
    return _image(draw_history(history, log=log), fmt, f"{job_id}-plot")


@router.get("/v1/jobs/{job_id}/landscape.{fmt}", response_class=Response,
            responses=JOB_NOT_FOUND)
def plot_job_landscape(job_id: uuid.UUID, fmt: Format, db: DbDep, caller: CallerDep,
                       max_points: PathPointsQuery = landscape.MAX_POINTS,
                       resolution: ResolutionQuery = RESOLUTION) -> Response:
    """For an expression model of two one-number parameters minimised itself (loss "none"):
    the contours of the objective, log-spaced, with the optimizer's path from start to end."""
    found = landscape.job_landscape(db=db, caller=caller, job_id=job_id,
                                    max_points=max_points)
    figure = draw_landscape(found.objective, found.paths, resolution=resolution,
                            title=found.title)
    return _image(figure, fmt, f"{job_id}-landscape")


@router.get("/v1/compare/plot.{fmt}", response_class=Response, responses=JOBS_NOT_FOUND)
def plot_comparison(fmt: Format, db: DbDep, caller: CallerDep, jobs: JobsQuery,
                    metric: MetricQuery = "loss", max_points: MaxPointsQuery = 1000,
                    band: BandQuery = "minmax", log: LogQuery = None) -> Response:
    """The metric of several jobs on shared step buckets: one line per seed group (the mean,
    with a band across the seeds: minmax or std), legends from the spec fields that differ."""
    result, curves = plots.compare_curves(db=db, caller=caller,
                                          job_ids=compare.parse_ids(jobs),
                                          metric=metric, max_points=max_points, band=band)
    figure = draw_comparison(result.steps, result.bucket_width, curves, metric=metric, log=log,
                             band_name="min–max" if band == "minmax" else "mean ± std")
    return _image(figure, fmt, "compare")


@router.get("/v1/compare/landscape.{fmt}", response_class=Response, responses=JOBS_NOT_FOUND)
def plot_comparison_landscape(fmt: Format, db: DbDep, caller: CallerDep, jobs: JobsQuery,
                              max_points: PathPointsQuery = landscape.MAX_POINTS,
                              resolution: ResolutionQuery = RESOLUTION) -> Response:
    """Several jobs' paths over the objective they share (the same expression of the same
    two parameters), e.g. SGD, momentum and Adam on Rosenbrock."""
    found = landscape.compare_landscape(db=db, caller=caller,
                                        job_ids=compare.parse_ids(jobs),
                                        max_points=max_points)
    figure = draw_landscape(found.objective, found.paths, resolution=resolution,
                            title=found.title)
    return _image(figure, fmt, "compare-landscape")


@router.get("/v1/sweeps/{sweep_id}/plot.{fmt}", response_class=Response,
            responses=SWEEP_NOT_FOUND)
def plot_sweep(sweep_id: uuid.UUID, fmt: Format, db: DbDep, caller: CallerDep,
               metric: Annotated[str, Query(
                   min_length=1, max_length=100,
                   description="A numeric summary field: final_loss, best_loss, "
                               "evaluation.val_accuracy...")] = sweep_plots.DEFAULT_METRIC,
               x: Annotated[str | None, Query(
                   max_length=200, description="The axis on the x axis, e.g. optimizer.lr; "
                   "default: the first axis with numeric values.")] = None,
               log: LogQuery = None) -> Response:
    """Each job's summary figure against one axis of the sweep (log scale when the axis
    spans decades), one line per combination of the other axes; seeds averaged, with their
    min–max as error bars; jobs without a value marked along the top."""
    found = sweep_plots.sweep_plot(db=db, caller=caller, sweep_id=sweep_id, metric=metric,
                                   x=x)
    figure = draw_sweep(found.points, x=found.x, metric=found.metric, log=log,
                        title=found.title)
    return _image(figure, fmt, f"{sweep_id}-plot")
