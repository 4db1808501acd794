"""What the client raises: one base class, one subclass per answer a caller acts on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx


class OptimlabError(Exception):
    """Anything the server refused or failed to answer; ``status`` is its HTTP status."""

    def __init__(self, message: str, *, status: int | None = None, detail: Any = None,
                 body: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.detail = detail
        self.body = body


class SpecRefused(OptimlabError):
    """A 422: ``message`` names each offending field (``optimizer.momentun: ...``) and
    ``detail`` is the API's list of errors, each with its ``loc``."""

    @property
    def fields(self) -> list[str]:
        """The dotted paths of the refused fields, e.g. ``["optimizer.momentun"]``."""
        if not isinstance(self.detail, list):
            return []
        return [_field_path(e.get("loc", [])) for e in self.detail if isinstance(e, dict)]


class Unauthorized(OptimlabError):
    """A 401: no API key was sent, or the server does not know it or it was revoked."""


class QuotaExceeded(OptimlabError):
    """A 429 (running or queued jobs) or a 403 (stored points): one of the owner's quotas;
    ``quota`` names it and ``limit`` is its value."""

    @property
    def quota(self) -> str | None:
        return self.body.get("quota") if isinstance(self.body, dict) else None

    @property
    def limit(self) -> int | None:
        return self.body.get("limit") if isinstance(self.body, dict) else None


class NotFound(OptimlabError):
    """A 404: no job, sweep or data set with this id."""


class Conflict(OptimlabError):
    """A 409: the request does not fit the resource's state (e.g. cancel a finished job)."""


class ServerUnavailable(OptimlabError):
    """The server could not be reached, timed out, or answered 503."""


class WaitTimeout(OptimlabError, TimeoutError):
    """``wait`` gave up before the job was over (the job itself goes on)."""


class MissingDependency(OptimlabError, ImportError):
    """An optional package (pandas) is needed for what was asked."""


_BY_STATUS: dict[int, type[OptimlabError]] = {
    401: Unauthorized, 404: NotFound, 409: Conflict, 422: SpecRefused, 429: QuotaExceeded,
    503: ServerUnavailable}


def raise_for(response: httpx.Response) -> None:
    """Raise the error a non-2xx ``response`` stands for (its body read if streamed)."""
    if response.is_success:
        return
    response.read()
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str):
        message = detail if isinstance(detail, str) else (response.text or response.reason_phrase)
    kind = _BY_STATUS.get(response.status_code, OptimlabError)
    if response.status_code == 403 and isinstance(body, dict) and "quota" in body:
        kind = QuotaExceeded
    if kind is Unauthorized:
        message = (f"{message} (401: pass --key or set OPTIMLAB_API_KEY; an operator makes "
                   "keys with `optimlab keys create`)")
    raise kind(message, status=response.status_code, detail=detail, body=body)


def unreachable(exc: httpx.TransportError, base_url: str) -> ServerUnavailable:
    return ServerUnavailable(f"cannot reach the optimlab server at {base_url}: {exc}")


def _field_path(loc: Sequence[Any]) -> str:
    # As the API writes its message: the leading "body"/"query"/"path" is not a field.
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts)
