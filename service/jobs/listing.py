"""List jobs: filters, an order (newest first, or any summary figure), opaque cursors."""

from __future__ import annotations

import base64
import dataclasses
import uuid
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine

from optimlab.service.db import listing
from optimlab.service.db.listing import JobFilter as JobFilter  # the filter list_jobs takes
from optimlab.service.db.listing import SummaryOrder
from optimlab.service.db.models import Job
from optimlab.service.jobs.callers import Caller
from optimlab.service.jobs.errors import InvalidCursor, InvalidQuery
from optimlab.worker.engine.sink import TrainingSummary

NEWEST_FIRST = "-created_at"
_STRUCTURED = {"steps_to", "evaluation"}
TEXT_FIELDS = frozenset({"device", "loss", "outcome", "stop_reason"})
SORTABLE = frozenset(f.name for f in dataclasses.fields(TrainingSummary)
                     if f.name not in _STRUCTURED)
EVALUATIONS = frozenset({"train_loss_full", "val_loss", "train_accuracy", "val_accuracy"})
# Every value parse_sort takes, for the OpenAPI document (so a client can offer them).
SORT_KEYS = [NEWEST_FIRST, *(f"{sign}{field}" for field in sorted(
    [*SORTABLE, *(f"evaluation.{e}" for e in EVALUATIONS)]) for sign in ("", "-"))]


class InvalidSort(ValueError):
    pass


def parse_sort(sort: str) -> SummaryOrder | None:
    """None for newest first; else the summary figure to order by (``-`` for descending)."""
    if sort in (NEWEST_FIRST, ""):
        return None
    descending = sort.startswith("-")
    field = sort.removeprefix("-")
    if field in SORTABLE:
        return SummaryOrder((field,), descending=descending, text=field in TEXT_FIELDS)
    name = field.removeprefix("evaluation.")
    if field.startswith("evaluation.") and name in EVALUATIONS:
        return SummaryOrder(("evaluation", name), descending=descending)
    known = ", ".join(sorted([*SORTABLE, *(f"evaluation.{e}" for e in EVALUATIONS)]))
    raise InvalidSort(f"cannot sort by {sort!r}; use -created_at or a summary field: {known}")


def parse_rank(rank_by: str) -> SummaryOrder | None:
    """``parse_sort`` for a ``rank_by`` parameter: its refusal names that parameter."""
    try:
        return parse_sort(rank_by)
    except InvalidSort as exc:
        raise InvalidQuery("rank_by", str(exc).replace("cannot sort", "cannot rank")) from None


def list_jobs(*, db: Engine, caller: Caller, where: JobFilter, sort: str, limit: int,
              cursor: str | None) -> tuple[list[Job], str | None]:
    """A page of the jobs ``caller`` may see and the cursor of the next one (None on the
    last page)."""
    order = parse_sort(sort)
    where = dataclasses.replace(where, owner=caller.scope)
    state = _decode(cursor) if cursor else {}
    with db.connect() as conn:
        if order is None:
            after = _after(state.get("after"))
            page = listing.newest_first(conn, where, limit=limit + 1, after=after)
        else:
            offset = int(state.get("offset", 0))
            page = listing.by_summary(conn, where, order, limit=limit + 1, offset=offset)
    if len(page) <= limit:
        return page, None
    page = page[:limit]
    if order is None:
        last = page[-1]
        return page, _encode({"after": [last.created_at.isoformat(), str(last.id)]})
    return page, _encode({"offset": int(state.get("offset", 0)) + limit})


def _encode(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(state)).decode().rstrip("=")


def _decode(cursor: str) -> dict[str, Any]:
    try:
        state = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(state, dict):
            raise ValueError("not an object")
        return state
    except ValueError:
        raise InvalidCursor("cursor is not one this API returned") from None


def _after(value: Any) -> tuple[datetime, uuid.UUID] | None:
    if value is None:
        return None
    try:
        created, job_id = value
        return datetime.fromisoformat(created), uuid.UUID(job_id)
    except (TypeError, ValueError):
        raise InvalidCursor("cursor is not one this API returned") from None
