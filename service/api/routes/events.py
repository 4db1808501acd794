"""/v1/jobs/{id}/events and /v1/sweeps/{id}/events: live Server-Sent Events streams."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import JSONResponse, StreamingResponse

from optimlab.service.api.deps import CallerDep, DbDep, SettingsDep
from optimlab.service.api.errors import unprocessable
from optimlab.service.api.schemas.common import ErrorPublic, ValidationErrorPublic
from optimlab.service.jobs import events
from optimlab.service.jobs.events import EventStream, InvalidEventId

router = APIRouter(tags=["events"], responses={
    422: {"model": ValidationErrorPublic,
          "description": "A malformed id, or a Last-Event-ID this stream did not send"}})
PING_SECONDS = 15

LastEventIdHeader = Annotated[str | None, Header(
    alias="Last-Event-ID", max_length=100_000,
    description="The id of the last event received; EventSource sends it when it reconnects.")]
LastEventIdQuery = Annotated[str | None, Query(
    max_length=100_000, description="The Last-Event-ID, for a client that cannot set "
                                    "headers (a new EventSource); the header wins.")]
# A job's event ids as its stream writes them (the stream still refuses an id it never
# sent): stated in the OpenAPI document only, the stream's own check gives the message.
JOB_EVENT_ID = {"pattern": r"^( *[0-9]{1,9}:(-1|[0-9]{1,18}) *)?$"}
JobLastEventIdHeader = Annotated[str | None, Header(
    alias="Last-Event-ID", max_length=100_000, json_schema_extra=JOB_EVENT_ID,
    description="The id of the last event received; EventSource sends it when it reconnects.")]
JobLastEventIdQuery = Annotated[str | None, Query(
    max_length=100_000, json_schema_extra=JOB_EVENT_ID,
    description="The Last-Event-ID, for a client that cannot set headers (a new "
                "EventSource); the header wins.")]

# Each event as schemathesis and generated clients read one: its fields (``data`` a JSON text).
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"event": {"type": "string", "enum": ["status", "reset", "metrics", "end"]},
                   "data": {"type": "string"},
                   "id": {"type": "string"},
                   "retry": {"type": "integer"}},
    "required": ["event", "data"],
}
_STREAM: dict[str, Any] = {
    "content": {"text/event-stream": {"schema": EVENT_SCHEMA}},
    "description": "Events `status`, `reset`, `metrics` and `end`, each `data` a JSON object; "
                   "`reset`, `metrics` and `end` carry the cursor as their id.",
}


EVENTS = (
    "Server-Sent Events read from the database as they are stored (polled every 0.25 s), each "
    "`data` a JSON object:\n\n"
    "- `status`: `{job_id, status, attempt, summary, error}`, on connect, when the status or "
    "the attempt changes, and when the run is over: then after its last points, with the "
    "final summary.\n"
    "- `reset`: `{job_id, attempt}`, a new run started over from step 0: drop the job's "
    "points received so far.\n"
    "- `metrics`: `{job_id, attempt, series: [{name, steps, values}]}`, the points of the "
    "next whole steps, each once, at most about 5,000 in an event; NaN and infinity are "
    "null.\n"
    "- `end`: `{job_id, status}` (a sweep's: `{sweep_id, jobs}`), every run is over and every "
    "stored point was sent; the stream closes. Don't reconnect.\n\n"
    "`reset`, `metrics` and `end` carry an id, the cursor after them: `<attempt>:<last step>` "
    "for a job; for a sweep, `s.` and its jobs' cursors packed (compressed, base64url). Sent "
    "back as `Last-Event-ID` (EventSource does so when it reconnects), it resumes the stream "
    "right after that event: no point twice, none missed. A comment keeps the connection "
    "alive every 15 s.")


def _described(summary: str) -> str:
    return f"{summary}\n\n{EVENTS}"


@router.get("/v1/jobs/{job_id}/events", response_class=StreamingResponse, response_model=None,
            responses={200: _STREAM, 404: {"model": ErrorPublic,
                                           "description": "No job with this id"}},
            description=_described("The job's status changes and metric points as they are "
                                    "stored, resumable."))
def job_events(job_id: uuid.UUID, db: DbDep, caller: CallerDep, settings: SettingsDep,
               last_event_id_header: JobLastEventIdHeader = None,
               last_event_id: JobLastEventIdQuery = None) -> EventSourceResponse | JSONResponse:
    given = last_event_id_header or last_event_id
    try:
        stream = events.open_job_stream(
            db=db, caller=caller, job_id=job_id, last_event_id=given,
            stale_after=timedelta(seconds=settings.stale_after_seconds))
    except InvalidEventId as exc:
        return _invalid(exc, header=bool(last_event_id_header))
    return _respond(stream)


@router.get("/v1/sweeps/{sweep_id}/events", response_class=StreamingResponse,
            response_model=None,
            responses={200: _STREAM, 404: {"model": ErrorPublic,
                                           "description": "No sweep with this id"}},
            description=_described("The same for every job of the sweep, until all of them "
                                    "are over."))
def sweep_events(sweep_id: uuid.UUID, db: DbDep, caller: CallerDep, settings: SettingsDep,
                 last_event_id_header: LastEventIdHeader = None,
                 last_event_id: LastEventIdQuery = None) -> EventSourceResponse | JSONResponse:
    given = last_event_id_header or last_event_id
    try:
        stream = events.open_sweep_stream(
            db=db, caller=caller, sweep_id=sweep_id, last_event_id=given,
            stale_after=timedelta(seconds=settings.stale_after_seconds))
    except InvalidEventId as exc:
        return _invalid(exc, header=bool(last_event_id_header))
    return _respond(stream)


def _invalid(exc: InvalidEventId, *, header: bool) -> JSONResponse:
    loc = ["header", "Last-Event-ID"] if header else ["query", "last_event_id"]
    return unprocessable([{"loc": loc, "msg": str(exc), "type": "last_event_id"}])


def _respond(stream: EventStream) -> EventSourceResponse:
    return EventSourceResponse(_encoded(stream), ping=PING_SECONDS)


async def _encoded(stream: EventStream) -> AsyncIterator[ServerSentEvent]:
    async for event in stream.events():
        # orjson writes NaN and infinity as null, like every other JSON body of the API.
        yield ServerSentEvent(orjson.dumps(event.data).decode(), event=event.event, id=event.id)
