"""/v1/jobs/{id}/metrics: a job's metric histories as JSON, NDJSON or CSV.

A step range, a point budget (M4 downsampling) and TensorBoard smoothing apply
to all three; without them, every stored point.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import asdict
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query
from starlette.responses import Response, StreamingResponse

from optimlab.service.api import csv_export
from optimlab.service.api.deps import CallerDep, DbDep
from optimlab.service.api.responses import OrjsonResponse
from optimlab.service.api.schemas.common import ErrorPublic, ValidationErrorPublic
from optimlab.service.api.schemas.metrics import MetricsPublic
from optimlab.service.jobs import history, queries

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


MAX_STEP = 2**63 - 1  # steps are BIGINT in the store
FromQuery = Annotated[int | None, Query(
    ge=0, le=MAX_STEP, description="The first step of the range (inclusive); default: 0.")]
ToQuery = Annotated[int | None, Query(
    ge=0, le=MAX_STEP, description="The last step of the range (inclusive, at least "
                                   "`from_step`); default: the last stored.")]
MaxPointsQuery = Annotated[int | None, Query(
    ge=history.MIN_POINTS, le=history.MAX_POINTS,
    description="At most this many points per series: when the range holds more, it is "
                "cut into equal step buckets and each keeps its first, last, min and max "
                "point (M4), so spikes and both ends survive; NaN and inf count as "
                "extremes. The buckets are the narrowest whose distinct kept points fit: "
                "the width is searched among multiples of 1/128 of the width of "
                "`max_points // 4` buckets (which always fit), so a smooth series returns "
                "within about 1 % of `max_points` and a noisy one as many as 4 per bucket "
                "allow (fewer when the range holds under about 4 x `max_points` steps, "
                "where widths are a few whole steps). `downsampled` gives the buckets "
                "chosen. Default: every point.")]
SmoothingQuery = Annotated[float | None, Query(
    ge=0, lt=1, allow_inf_nan=False,
    description="TensorBoard's smoothing weight (a debiased EMA of the returned points; "
                "non-finite values pass through): adds `smoothed`.")]
FormatQuery = Annotated[Literal["json", "ndjson"], Query(
    alias="format",
    description="`ndjson` streams the same points as one `{name, step, value}` object per "
                "line (plus `smoothed` with `smoothing`), series by name: without "
                "`max_points`, a full export in constant memory.")]


def _window(from_step: int | None, to_step: int | None, max_points: int | None,
            smoothing: float | None) -> history.Window:
    return history.Window(from_step=from_step, to_step=to_step, max_points=max_points,
                          smoothing=smoothing)


@router.get("/{job_id}/metrics", response_class=OrjsonResponse, response_model=None,
            responses={200: {"model": MetricsPublic,
                             "content": {"application/x-ndjson": {}}}, **NOT_FOUND})
def get_metrics(job_id: uuid.UUID, db: DbDep, caller: CallerDep, names: NamesQuery = None,
                from_step: FromQuery = None, to_step: ToQuery = None,
                max_points: MaxPointsQuery = None, smoothing: SmoothingQuery = None,
                fmt: FormatQuery = "json") -> Response:
    """Each series' points (so far, while the job runs) in the step range; NaN and inf are null.

    Without parameters, every stored point, as `{name, steps, values}`. With `max_points`,
    each series also has `downsampled`: null when every point in range fitted, else
    `{method, buckets, bucket_width, points_in_range}`. With `smoothing`, `smoothed`.
    """
    window = _window(from_step, to_step, max_points, smoothing)
    if fmt == "ndjson":
        rows = history.stream_history(db=db, caller=caller, job_id=job_id,
                                      names=_names(names),
                                      window=window)
        return StreamingResponse(_ndjson(rows, smoothed=smoothing is not None),
                                 media_type="application/x-ndjson")
    if window.is_everything:  # the original contract, byte for byte
        series = queries.read_metrics(db=db, caller=caller, job_id=job_id,
                                      names=_names(names))
        return OrjsonResponse({
            "job_id": job_id,
            "series": [{"name": s.name, "steps": s.steps, "values": s.values} for s in series],
        })
    histories = history.read_histories(db=db, caller=caller, job_id=job_id,
                                       names=_names(names),
                                       window=window)
    return OrjsonResponse({"job_id": job_id,
                           "series": [_series(s, window) for s in histories]})


def _series(series: history.SeriesHistory, window: history.Window) -> dict[str, Any]:
    h = series.history
    body: dict[str, Any] = {"name": h.name, "steps": h.steps, "values": h.values}
    if window.max_points is not None:
        body["downsampled"] = None if h.downsampled is None else asdict(h.downsampled)
    if window.smoothing is not None:
        body["smoothed"] = series.smoothed
    return body


def _ndjson(rows: Iterator[history.Row], *, smoothed: bool) -> Iterator[bytes]:
    lines: list[bytes] = []
    for name, step, value, smooth in rows:
        line = {"name": name, "step": step, "value": value}
        if smoothed:
            line["smoothed"] = smooth
        lines.append(orjson.dumps(line))  # NaN and inf are null, as in the JSON body
        if len(lines) >= 5_000:
            yield b"\n".join(lines) + b"\n"
            lines.clear()
    if lines:
        yield b"\n".join(lines) + b"\n"


@router.get("/{job_id}/metrics.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}}, **NOT_FOUND})
def get_metrics_csv(job_id: uuid.UUID, db: DbDep, caller: CallerDep,
                    names: NamesQuery = None,
                    from_step: FromQuery = None, to_step: ToQuery = None,
                    max_points: MaxPointsQuery = None,
                    smoothing: SmoothingQuery = None) -> StreamingResponse:
    """The same points as CSV rows ``step,name,value``, series by name, streamed; with
    ``smoothing``, a fourth column ``smoothed``.

    Each value is the shortest text that reads back as the same float (``0.1``,
    ``1e-300``, ``5e-324``, ``-0.0``; small exponents may be written out, ``0.000091``);
    NaN and infinities are ``nan``, ``inf`` and ``-inf``. A name with a comma, a quote or
    a newline is quoted, quotes doubled."""
    chunks = history.stream_chunks(db=db, caller=caller, job_id=job_id, names=_names(names),
                                   window=_window(from_step, to_step, max_points, smoothing))
    return StreamingResponse(_csv(chunks, smoothed=smoothing is not None),
                             media_type="text/csv",
                             headers={"Content-Disposition":
                                      f'attachment; filename="{job_id}-metrics.csv"'})


def _csv(chunks: Iterator[history.Chunk], *, smoothed: bool) -> Iterator[bytes]:
    yield csv_export.header(smoothed=smoothed)
    pending: list[bytes] = []
    size = 0
    for chunk in chunks:  # sent in pieces of at least 256 KiB
        pending.append(csv_export.rows(chunk))
        size += len(pending[-1])
        if size >= 262_144:
            yield b"".join(pending)
            pending.clear()
            size = 0
    yield b"".join(pending)
