"""A job's or a sweep's Server-Sent Events, followed across dropped connections.

The API gives every ``reset``, ``metrics`` and ``end`` event an id, the stream's cursor
after it; sent back as ``Last-Event-ID`` it resumes right after that event, so points
arrive once however often the connection drops. ``status`` events carry no cursor and
come again on every connect: the repeats are dropped here. (A small parser rather than
httpx-sse: that hides the keep-alive comments, and ``wait(timeout=)`` must notice its
deadline pass on a stream that only pings.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from optimlab.client.errors import ServerUnavailable, WaitTimeout, raise_for

# The API pings every 15 s: a stream silent for three pings is dead.
STREAM_READ_SECONDS = 45.0


@dataclass(frozen=True)
class Event:
    """One event: ``status``, ``reset``, ``metrics`` or ``end``, its JSON ``data``, and the
    stream's cursor after it (``id``; None before the first event that carries one)."""

    event: str
    data: dict[str, Any]
    id: str | None

    def points(self) -> list[tuple[int, str, float | None]]:
        """A metrics event's points as ``(step, name, value)``; NaN and infinity are None."""
        if self.event != "metrics":
            return []
        return [(step, series["name"], value) for series in self.data["series"]
                for step, value in zip(series["steps"], series["values"], strict=True)]


@dataclass(frozen=True)
class Reconnect:
    """How often to reconnect after a drop before giving up, and the first pause (doubled
    each time, at most 5 s); any event received resets the count."""

    attempts: int = 5
    pause: float = 0.2


def follow(http: httpx.Client, path: str, *, last_event_id: str | None = None,
           deadline: float | None = None, reconnect: Reconnect = Reconnect()
           ) -> Iterator[Event]:
    """The events at ``path`` until ``end``, reconnecting with Last-Event-ID after a drop.

    The first connection is not retried: an unreachable server raises at once. ``deadline``
    (``time.monotonic()``) raises :class:`WaitTimeout` once passed.
    """
    failures = 0
    seen: dict[str, Any] = {}  # job id -> its last status event's data
    connected = False
    while True:
        try:
            for event in _connection(http, path, last_event_id, deadline):
                connected = True
                _check(deadline)
                if event is None:
                    continue  # the stream is open, or a keep-alive comment came
                failures = 0
                last_event_id = event.id or last_event_id
                if _repeated(event, seen):
                    continue
                yield event
                if event.event == "end":
                    return
            drop: Exception = ServerUnavailable(f"{path}: the stream closed before its end")
        except httpx.TransportError as exc:
            _check(deadline)
            if not connected:
                raise ServerUnavailable(f"cannot reach the optimlab server at "
                                        f"{http.base_url}: {exc}") from exc
            drop = exc
        failures += 1
        if failures > reconnect.attempts:
            raise ServerUnavailable(f"{path}: the stream dropped {failures} times in a row; "
                                    f"last: {drop}") from drop
        time.sleep(min(reconnect.pause * 2 ** (failures - 1), 5.0))


def _connection(http: httpx.Client, path: str, last_event_id: str | None,
                deadline: float | None) -> Iterator[Event | None]:
    """One connection's events; None when it opens and for each comment, so that the
    caller sees its deadline pass on a quiet stream too."""
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    read = STREAM_READ_SECONDS if deadline is None else max(
        0.01, min(STREAM_READ_SECONDS, deadline - time.monotonic()))
    timeout = httpx.Timeout(http.timeout.connect, read=read, write=http.timeout.write,
                            pool=http.timeout.pool)
    with http.stream("GET", path, headers=headers, timeout=timeout) as response:
        raise_for(response)
        kind = response.headers.get("content-type", "").partition(";")[0].strip()
        if kind != "text/event-stream":
            raise ServerUnavailable(f"{path}: expected an event stream, got {kind!r}")
        yield None
        yield from parse(response.iter_lines(), last_event_id)


def parse(lines: Iterator[str], last_event_id: str | None = None) -> Iterator[Event | None]:
    """Events from the lines of a ``text/event-stream`` (the WHATWG rules: ``data`` lines
    joined, the id kept until another comes); None for each comment."""
    kind = ""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield Event(kind or "message", orjson.loads("\n".join(data)), last_event_id)
            kind, data = "", []
            continue
        if line.startswith(":"):
            yield None
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            kind = value
        elif name == "id" and "\0" not in value:
            last_event_id = value or None


def _repeated(event: Event, seen: dict[str, Any]) -> bool:
    """Whether a status event says again what the last one for its job said."""
    if event.event != "status":
        return False
    job = str(event.data.get("job_id"))
    if seen.get(job) == event.data:
        return True
    seen[job] = event.data
    return False


def _check(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise WaitTimeout("gave up waiting: the timeout passed (the job goes on)")
