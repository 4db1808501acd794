"""What every request passes before a route sees it: the settings' limits made active, the
body's size (and a JSON body's number of values) bounded before it is parsed, and one rule
for all text input: no NUL character in the path, a query parameter or a JSON string.

NUL is refused because PostgreSQL cannot store it in text (a job name, a tag, a filter
compared with stored text all reach the database), and no name or value needs it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from optimlab.service.settings import Settings
from optimlab.worker.limits import setting_name, use_limits

# Room for a multipart upload's boundaries and its other form fields.
FORM_SLACK_BYTES = 1 << 20
# Values a JSON body may hold beyond twice max_array_values (an expression's parameters and
# inline data are bounded separately; the rest of a spec is small).
JSON_SLACK_VALUES = 100_000
# A JSON escape of NUL that is not itself an escaped backslash followed by "u0000".
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
NUL_MESSAGE = "text may not contain NUL characters (\\u0000)"


class RequestGuard:
    """413 for a body over its limit: at once for a declared Content-Length, and while
    reading for a streamed (chunked) body. JSON bodies are read here (up to the limit) so
    that their values can be counted (commas bound them) and their strings checked for NUL
    before the application parses them; they are replayed to it."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.limits = settings.limits
        self.max_bytes = settings.max_request_bytes
        self.max_form_bytes = max(settings.max_request_bytes,
                                  settings.max_upload_bytes + FORM_SLACK_BYTES)
        self.max_json_values = 2 * self.limits.max_array_values + JSON_SLACK_VALUES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with use_limits(self.limits):
            await self._guard(scope, receive, send)

    async def _guard(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (loc := _nul_in_url(scope)) is not None:
            await _respond(send, 422, _nul_error(loc))
            return
        headers = dict(scope["headers"])
        form = headers.get(b"content-type", b"").startswith(b"multipart/")
        limit = self.max_form_bytes if form else self.max_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(send, limit)
            return
        if form and declared is not None:
            await self.app(scope, receive, send)  # streamed to the route, which bounds it
            return
        body = await _read(receive, limit)
        if body is None:
            await self._too_large(send, limit)
            return
        if not form and (refusal := self._check_json(body)) is not None:
            await _respond(send, *refusal)
            return
        await self.app(scope, _replay(body, receive), send)

    def _check_json(self, body: bytes) -> tuple[int, dict[str, Any]] | None:
        values = body.count(b",") + 1
        if values > self.max_json_values:
            return 413, {"detail": f"the request body holds over {self.max_json_values} JSON "
                                   f"values (2 x {setting_name('max_array_values')} + "
                                   f"{JSON_SLACK_VALUES})"}
        if _NUL_ESCAPE.search(body) is None:
            return None
        try:
            document = json.loads(body)
        except ValueError:
            return None  # not JSON: the route says so
        loc = next(_nul_paths(document, ["body"]), None)
        return None if loc is None else (422, _nul_error(loc))

    async def _too_large(self, send: Send, limit: int) -> None:
        setting = "max_upload_bytes" if limit == self.max_form_bytes and \
            limit != self.max_bytes else "max_request_bytes"
        await _respond(send, 413, {"detail": f"request body over {limit} bytes "
                                             f"({setting_name(setting)})"})


async def _read(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None past ``limit`` bytes (the rest is not read)."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body", False):
            break
    return bytes(body)


def _nul_in_url(scope: Scope) -> list[str] | None:
    if "\x00" in scope.get("path", ""):
        return ["path"]
    query: bytes = scope.get("query_string", b"")
    if b"%00" not in query and b"\x00" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return ["query", name.replace("\x00", "\\u0000")]
    return None


def _nul_paths(node: Any, loc: list[Any]) -> Iterator[list[Any]]:
    if isinstance(node, str):
        if "\x00" in node:
            yield loc
    elif isinstance(node, dict):
        for key, value in node.items():
            if "\x00" in key:
                yield [*loc, key.replace("\x00", "\\u0000")]
            yield from _nul_paths(value, [*loc, key])
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _nul_paths(item, [*loc, i])


def _nul_error(loc: list[Any]) -> dict[str, Any]:
    shown = ".".join(str(p) for p in (loc[1:] if len(loc) > 1 else loc))
    return {"detail": [{"loc": loc, "msg": NUL_MESSAGE, "type": "nul"}],
            "message": f"{shown}: {NUL_MESSAGE}"}


async def _respond(send: Send, status: int, content: dict[str, Any]) -> None:
    body = json.dumps(content).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
