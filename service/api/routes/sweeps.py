"""/v1/sweeps: a base spec and axes in, a set of jobs queued; leaderboard, list, cancel."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from optimlab.service.api.deps import CallerDep, DbDep, DispatcherDep, SettingsDep
from optimlab.service.api.schemas.common import QUOTA, ErrorPublic, ValidationErrorPublic
from optimlab.service.api.schemas.sweeps import SweepPublic, SweepsPublic
from optimlab.service.jobs import sweeps
from optimlab.service.jobs.listing import SORT_KEYS
from optimlab.service.jobs.sweep_spec import SweepSpec

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"],
                   responses={422: {"model": ValidationErrorPublic,
                                    "description": "A field or a point is invalid; "
                                                   "`message` names it"}})
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "No sweep with this id"}}
RankQuery = Annotated[str, Query(
    max_length=100, json_schema_extra={"enum": SORT_KEYS},
    description="A summary field (final_loss, best_loss, "
    "evaluation.val_accuracy, -steps_per_second...); - is descending.")]


@router.post("", status_code=201, response_model=SweepPublic, responses={
    503: {"model": ErrorPublic, "description": "The broker is unreachable"}, **QUOTA})
def create_sweep(request: SweepSpec, response: Response, db: DbDep, caller: CallerDep,
                 dispatcher: DispatcherDep, settings: SettingsDep) -> SweepPublic:
    """Expand the axes (grid or random) and seeds into jobs, validate every one, then queue
    them all; one invalid point refuses the whole sweep, naming the point."""
    sweep = sweeps.submit_sweep(db=db, caller=caller, dispatcher=dispatcher,
                                settings=settings,
                                request=request)
    response.headers["Location"] = f"/v1/sweeps/{sweep.id}"
    return SweepPublic.of(sweeps.get_sweep(db=db, caller=caller, sweep_id=sweep.id),
                          detailed=True)


@router.get("", response_model=SweepsPublic)
def list_sweeps(db: DbDep, caller: CallerDep, tag: Annotated[str | None,
                Query(max_length=100)] = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                cursor: Annotated[str | None, Query(max_length=500)] = None) -> SweepsPublic:
    """Sweeps, newest first, with their jobs' counts by status."""
    page, next_cursor = sweeps.list_sweeps(db=db, caller=caller, tag=tag, limit=limit,
                                           cursor=cursor)
    return SweepsPublic(data=[SweepPublic.of(v, detailed=False) for v in page],
                        next_cursor=next_cursor)


@router.get("/{sweep_id}", response_model=SweepPublic, responses=NOT_FOUND)
def get_sweep(sweep_id: uuid.UUID, db: DbDep, caller: CallerDep,
              rank_by: RankQuery = "final_loss",
              limit: Annotated[int | None, Query(ge=1, le=100_000)] = None) -> SweepPublic:
    """Counts by status, every job ranked by ``rank_by`` with its axis values (unfinished
    ones last), and each point's metric over its seeds."""
    view = sweeps.get_sweep(db=db, caller=caller, sweep_id=sweep_id, rank_by=rank_by,
                            limit=limit)
    return SweepPublic.of(view, detailed=True)


@router.post("/{sweep_id}/cancel", response_model=SweepPublic, responses=NOT_FOUND)
def cancel_sweep(sweep_id: uuid.UUID, db: DbDep, caller: CallerDep) -> SweepPublic:
    """Cancel every queued or running job of the sweep; finished jobs keep their results."""
    return SweepPublic.of(sweeps.cancel_sweep(db=db, caller=caller, sweep_id=sweep_id),
                          detailed=True)
