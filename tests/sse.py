"""Server-Sent Events for tests: the API served by uvicorn in a thread, and a stream reader.

Starlette's TestClient buffers a whole response before returning it, so a stream that
only ends when its job does must be read from a real server.
"""

from __future__ import annotations

import contextlib
import math
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import uvicorn
from fastapi import FastAPI

from tests.processes import free_port
from tests.stacks import wait_for

Point = tuple[int, str, float | None]  # (step, name, value), NaN and infinity as None


@contextlib.contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` on a free port until the block ends; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), timeout=60, interval=0.05,
                 what="uvicorn to start")
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@dataclass(frozen=True)
class Event:
    event: str
    data: dict[str, Any]
    id: str | None

    def points(self) -> list[Point]:
        assert self.event == "metrics", self
        return [(step, series["name"], value) for series in self.data["series"]
                for step, value in zip(series["steps"], series["values"], strict=True)]


def read_events(response: httpx.Response) -> Iterator[Event]:
    """The events of an open ``text/event-stream`` response, as they arrive."""
    assert response.status_code == 200, response.read()
    assert response.headers["content-type"].startswith("text/event-stream")
    parser = _Parser()
    for line in response.iter_lines():
        if (event := parser.line(line)) is not None:
            yield event


async def aread_events(response: httpx.Response) -> AsyncIterator[Event]:
    """The same for an ``httpx.AsyncClient``'s response."""
    assert response.status_code == 200, await response.aread()
    assert response.headers["content-type"].startswith("text/event-stream")
    parser = _Parser()
    async for line in response.aiter_lines():
        if (event := parser.line(line)) is not None:
            yield event


class _Parser:
    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.data: list[str] = []

    def line(self, line: str) -> Event | None:
        """Take one line; the event it completes, if any."""
        if not line:
            event = None
            if self.data or self.fields:
                event = Event(self.fields.get("event", "message"),
                              orjson.loads("\n".join(self.data)), self.fields.get("id"))
            self.fields, self.data = {}, []
            return event
        if line.startswith(":"):
            return None  # a comment: the keep-alive ping
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self.data.append(value)
        else:
            self.fields[name] = value
        return None


def stream(client: httpx.Client, path: str, last_event_id: str | None = None
           ) -> contextlib.AbstractContextManager[httpx.Response]:
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    return client.stream("GET", path, headers=headers)


def stored(value: float) -> float | None:
    """A value as an event carries it: JSON has no NaN or infinity."""
    return value if math.isfinite(value) else None


def points_of(events: Sequence[Event], job_id: uuid.UUID | str | None = None
              ) -> list[Point]:
    """Every point the metrics events carry (of one job, if named), as received."""
    return [p for e in events if e.event == "metrics"
            and (job_id is None or e.data["job_id"] == str(job_id)) for p in e.points()]


def assert_each_once(received: list[Point], written: list[Point]) -> None:
    """The points received are the points written: each once, with its value."""
    counts = Counter((step, name) for step, name, _ in received)
    twice = [key for key, n in counts.items() if n > 1]
    assert not twice, f"{len(twice)} points sent more than once, e.g. {twice[:3]}"
    missing = {(s, n) for s, n, _ in written} - set(counts)
    assert not missing, f"{len(missing)} points never sent, e.g. {sorted(missing)[:3]}"
    assert sorted(received, key=_key) == sorted(written, key=_key)


def _key(point: Point) -> tuple[int, str]:
    return point[0], point[1]


def last_id(events: Sequence[Event]) -> str:
    """What a client sends back as Last-Event-ID: the id of the last event that had one."""
    ids = [e.id for e in events if e.id is not None]
    assert ids, "no event carried an id"
    return ids[-1]
