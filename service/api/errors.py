"""Every refusal as JSON: 422s keep FastAPI's ``detail`` list and add one readable ``message``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa
from starlette.responses import JSONResponse

from optimlab.service.api.deps import Unauthorized
from optimlab.service.api.schemas.common import ErrorPublic
from optimlab.service.jobs.checkpoints import CheckpointNotFound
from optimlab.service.jobs.datasets import (
    DatasetConflict,
    InvalidUpload,
    PayloadTooLarge,
)
from optimlab.service.jobs.errors import (
    BrokerUnavailable,
    DatasetNotFound,
    InvalidCursor,
    InvalidQuery,
    JobConflict,
    JobNotFound,
    QuotaExceeded,
    SweepNotFound,
)
from optimlab.service.jobs.listing import InvalidSort
from optimlab.worker.spec_errors import SpecError

log = logging.getLogger(__name__)


def field_path(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] in ("body", "query", "path"):
        parts = parts[1:]
    return ".".join(parts)


def unprocessable(errors: list[dict[str, Any]]) -> JSONResponse:
    message = "; ".join(f"{field_path(e['loc'])}: {e['msg']}" for e in errors)
    return JSONResponse(status_code=422, content={"detail": errors, "message": message})


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # The offending input is not echoed back: it may be megabytes of data.
    errors = [{**{k: v for k, v in e.items() if k not in ("input", "url", "loc")},
               "loc": _without_tags(e["loc"], exc.body)} for e in exc.errors()]
    return unprocessable(jsonable_encoder(errors))


def _is_tag(node: dict[str, Any], part: Any, rest: Sequence[Any]) -> bool:
    # The tag may also be a field name (a model of kind "expression" has a field
    # "expression"): it is the tag when the location goes on below a value that
    # has nothing below it.
    return part not in node or (bool(rest) and not isinstance(node[part], dict | list))


def _without_tags(loc: Sequence[Any], body: Any) -> list[Any]:
    """Drop the tag pydantic puts in the location of a discriminated union's error.

    ``("body", "model", "expression", "parameters")`` names the field
    ``model.parameters`` of a model whose ``kind`` is "expression".
    """
    kept: list[Any] = []
    node = body
    for i, part in enumerate(loc):
        if i == 0 and part == "body":
            kept.append(part)
            continue
        if isinstance(node, dict) and node.get("kind") == part and _is_tag(node, part, loc[i + 1:]):
            continue
        kept.append(part)
        node = node.get(part) if isinstance(node, dict) else (
            node[part] if isinstance(node, list) and isinstance(part, int)
            and -len(node) <= part < len(node) else None)
    return kept


async def _spec_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SpecError)
    return unprocessable([{"loc": ["body", *exc.loc], "msg": exc.message, "type": "spec"}])


async def _invalid_upload(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidUpload)
    return unprocessable([{"loc": ["body", exc.field], "msg": exc.message, "type": "upload"}])


async def _invalid_cursor(_: Request, exc: Exception) -> JSONResponse:
    return unprocessable([{"loc": ["query", "cursor"], "msg": str(exc), "type": "cursor"}])


async def _invalid_sort(_: Request, exc: Exception) -> JSONResponse:
    return unprocessable([{"loc": ["query", "sort"], "msg": str(exc), "type": "sort"}])


async def _invalid_query(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidQuery)
    return unprocessable([{"loc": ["query", exc.field], "msg": str(exc), "type": "query"}])


def _plain(status: int) -> Any:
    async def handler(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=status, content={"detail": str(exc)})

    return handler


async def _quota(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, QuotaExceeded)
    return JSONResponse(status_code=exc.status, content={
        "detail": str(exc), "quota": exc.quota, "limit": exc.limit})


async def _unauthorized(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=401, content={"detail": str(exc)},
                        headers={"WWW-Authenticate": "Bearer"})
DATABASE_RETRY_SECONDS = 5
DATABASE_AWAY: dict[int | str, dict[str, Any]] = {503: {
    "model": ErrorPublic, "description": "The database (or the broker) is unavailable; "
                                         "retry after `Retry-After` seconds"}}


async def _database_unavailable(_: Request, exc: Exception) -> JSONResponse:
    # The database is away (refused, cut, a pool wait timed out, an unopenable SQLite
    # file): a client may retry, and the pool's pre-ping reconnects once it is back.
    # Other database errors are bugs and stay 500s.
    if isinstance(exc, sa.DBAPIError) and not database_away(exc):
        raise exc
    log.warning("database unavailable: %s", _first_line(exc))
    return JSONResponse(status_code=503, headers={"Retry-After": str(DATABASE_RETRY_SECONDS)},
                        content={"detail": "the database is unavailable; retry in a few "
                                           f"seconds ({_first_line(exc)})"})


def database_away(exc: BaseException) -> bool:
    """An error that says the database cannot be reached now, not that the query is wrong."""
    if isinstance(exc, sa.TimeoutError | sa.OperationalError | sa.InterfaceError):
        return True
    return isinstance(exc, sa.DBAPIError) and exc.connection_invalidated


def _first_line(exc: BaseException) -> str:
    text = str(exc.orig) if isinstance(exc, sa.DBAPIError) and exc.orig else str(exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0][:200]


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Unauthorized, _unauthorized)
    app.add_exception_handler(QuotaExceeded, _quota)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(SpecError, _spec_error)
    app.add_exception_handler(InvalidCursor, _invalid_cursor)
    app.add_exception_handler(InvalidSort, _invalid_sort)
    app.add_exception_handler(InvalidQuery, _invalid_query)
    app.add_exception_handler(JobNotFound, _plain(404))
    app.add_exception_handler(SweepNotFound, _plain(404))
    app.add_exception_handler(CheckpointNotFound, _plain(404))
    app.add_exception_handler(JobConflict, _plain(409))
    app.add_exception_handler(BrokerUnavailable, _plain(503))
    app.add_exception_handler(InvalidUpload, _invalid_upload)
    app.add_exception_handler(PayloadTooLarge, _plain(413))
    app.add_exception_handler(DatasetNotFound, _plain(404))
    app.add_exception_handler(DatasetConflict, _plain(409))
    app.add_exception_handler(sa.DBAPIError, _database_unavailable)
    app.add_exception_handler(sa.TimeoutError, _database_unavailable)
