"""Live events of a job, or of a sweep's jobs: status changes and metric points as they are stored.

The stream polls the database (the source of truth) every quarter second and sends, per job:

``status``   ``{"job_id", "status", "attempt", "summary", "error"}``: on connect, whenever the
             status or the attempt changes, and when the run is over: then after its last
             points, with the final summary.
``reset``    ``{"job_id", "attempt"}``: a new run started over from step 0 and replaced the
             points sent so far: drop them.
``metrics``  ``{"job_id", "attempt", "series": [{"name", "steps", "values"}]}``: the points of
             the next whole steps, each point once, at most about 5,000 in an event (NaN and
             infinity are null).
``end``      ``{"job_id", "status"}`` (``{"sweep_id", "jobs"}`` for a sweep): every job's run
             is over and every stored point was sent; the stream closes. Don't reconnect.

``reset``, ``metrics`` and ``end`` carry an id, the cursor after them (a status event moves
none). Sent back as ``Last-Event-ID`` (EventSource does so when it reconnects), it resumes the
stream right after that event: no point twice, none missed. A job's cursor is
``<attempt>:<last step sent>``; a sweep's packs its jobs' (see :class:`SweepCursor`).
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from sqlalchemy import Connection, Engine

from optimlab.service.db import events as store
from optimlab.service.db.jobs import CANCELLED, FINISHED
from optimlab.service.db.models import utcnow
from optimlab.service.jobs.callers import Caller
from optimlab.service.jobs.errors import JobNotFound
from optimlab.service.jobs.ownership import job_for, sweep_for

POLL_SECONDS = 0.25
MAX_POINTS = 5_000
MAX_ATTEMPT = 2**31 - 1
MAX_STEP = 2**63 - 1
SWEEP_PREFIX = "s."

T = TypeVar("T")


class InvalidEventId(ValueError):
    """A Last-Event-ID this stream did not send."""


@dataclass(frozen=True)
class Cursor:
    """What a client holds of a job: the points of ``attempt`` up to ``step`` (-1: none)."""

    attempt: int = 0
    step: int = -1


START = Cursor()


@dataclass(frozen=True)
class Event:
    event: str
    data: dict[str, Any]
    id: str | None = None


# --- cursors -----------------------------------------------------------------------------

_JOB_CURSOR = re.compile(r"(\d{1,10}):(-1|\d{1,19})")


def format_job_cursor(cursor: Cursor) -> str:
    return f"{cursor.attempt}:{cursor.step}"


def parse_job_cursor(text: str) -> Cursor:
    match = _JOB_CURSOR.fullmatch(text.strip())
    if match is None:
        raise InvalidEventId(f"{_shown(text)} is not an event id of this stream "
                             "(<attempt>:<step>)")
    attempt, step = int(match[1]), int(match[2])
    if attempt > MAX_ATTEMPT or step > MAX_STEP:
        raise InvalidEventId(f"{_shown(text)} is out of range")
    return Cursor(attempt, step)


class SweepCursor:
    """The cursors of a sweep's jobs as one short event id.

    Each job has its place in the sweep (oldest first; a sweep's jobs are created with it):
    the id is ``s.`` and the base64url of the zlib-compressed bytes of a format byte, a
    digest of the jobs' ids in that order, and per job its attempt (4 bytes) and last step
    sent + 1 (8 bytes; 0: none). Jobs of one sweep run alike, so it compresses well: a few
    hundred bytes for thousands of jobs. The digest ties the id to the sweep's jobs.
    """

    FORMAT = 1
    RECORD = struct.Struct(">IQ")

    def __init__(self, job_ids: Sequence[uuid.UUID]) -> None:
        self.job_ids = list(job_ids)
        self.place = {job_id: i for i, job_id in enumerate(self.job_ids)}
        self.digest = hashlib.blake2b(b"".join(j.bytes for j in self.job_ids),
                                      digest_size=8).digest()
        self.records = bytearray(self.RECORD.size * len(self.job_ids))

    def set(self, job_id: uuid.UUID, cursor: Cursor) -> None:
        self.RECORD.pack_into(self.records, self.RECORD.size * self.place[job_id],
                              cursor.attempt, cursor.step + 1)

    def text(self) -> str:
        raw = bytes([self.FORMAT]) + self.digest + self.records
        return SWEEP_PREFIX + base64.urlsafe_b64encode(zlib.compress(raw, 1)).decode().rstrip("=")

    def parse(self, text: str) -> dict[uuid.UUID, Cursor]:
        """The cursors an id of this sweep's stream holds; jobs with none sent left out."""
        size = 1 + len(self.digest) + len(self.records)
        try:
            text = text.strip()
            if not text.startswith(SWEEP_PREFIX):
                raise ValueError("no prefix")
            body = text[len(SWEEP_PREFIX):]
            packed = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_",
                                      validate=True)
            inflate = zlib.decompressobj()
            raw = inflate.decompress(packed, size + 1)  # bounded: no zip bomb
            if not inflate.eof or inflate.unconsumed_tail or inflate.unused_data or \
                    len(raw) != size or raw[0] != self.FORMAT or raw[1:9] != self.digest:
                raise ValueError("not this sweep's")
        except (ValueError, zlib.error):
            raise InvalidEventId(f"{_shown(text)} is not an event id of this sweep's "
                                 "stream") from None
        cursors = {}
        for job_id, (attempt, step) in zip(self.job_ids, self.RECORD.iter_unpack(raw[9:]),
                                           strict=True):
            if attempt > MAX_ATTEMPT or step > MAX_STEP + 1:
                raise InvalidEventId(f"{_shown(text)} is out of range")
            if attempt or step:
                cursors[job_id] = Cursor(attempt, step - 1)
        return cursors


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


# --- opening a stream (refusals come before the response starts) ---------------------------

def open_job_stream(*, db: Engine, caller: Caller, job_id: uuid.UUID,
                    last_event_id: str | None, stale_after: timedelta,
                    poll: float = POLL_SECONDS) -> EventStream:
    cursor = parse_job_cursor(last_event_id) if last_event_id else START
    with db.connect() as conn:
        job_for(conn, caller, job_id)
        states = store.job_states(conn, [job_id])
        if not states:
            raise JobNotFound(job_id)
        _check_cursor(conn, states[0], cursor, last_event_id)
    return EventStream(db, job_id=job_id, resume={job_id: cursor},
                       stale_after=stale_after, poll=poll)


def open_sweep_stream(*, db: Engine, caller: Caller, sweep_id: uuid.UUID,
                      last_event_id: str | None, stale_after: timedelta,
                      poll: float = POLL_SECONDS) -> EventStream:
    with db.connect() as conn:
        sweep_for(conn, caller, sweep_id)
        states = store.sweep_job_states(conn, sweep_id)
        order = SweepCursor([state.id for state in states])
        cursors = order.parse(last_event_id) if last_event_id else {}
        for state in states:
            if state.id in cursors:
                _check_cursor(conn, state, cursors[state.id], last_event_id)
    return EventStream(db, sweep_id=sweep_id, resume=cursors, stale_after=stale_after,
                       poll=poll)


def _check_cursor(conn: Connection, state: store.JobState, cursor: Cursor,
                  text: str | None) -> None:
    """Refuse a cursor ahead of the job: resuming from it would skip points to come."""
    if cursor.attempt > state.attempt:
        raise InvalidEventId(f"{_shown(text or '')} names run {cursor.attempt} of job "
                             f"{state.id}, which has started {state.attempt}")
    if cursor.attempt == state.attempt and cursor.step >= 0:
        stored = max(store.series_ends(conn, state.id, state.attempt).values(), default=-1)
        if cursor.step > stored:
            raise InvalidEventId(f"{_shown(text or '')} is past step {stored}, the last "
                                 f"one stored of job {state.id}")


# --- the stream --------------------------------------------------------------------------

@dataclass
class _Followed:
    cursor: Cursor
    # The last status event sent: (status, attempt, summary, error).
    sent: tuple[str, int, Any, str | None] | None = None
    sent_done: bool = False  # that event showed the run over
    drained: bool = False  # the run is over and every point of it was sent
    status: str | None = None


class EventStream:
    """One client's stream; :meth:`events` polls until every job is over and sent."""

    def __init__(self, db: Engine, *, stale_after: timedelta, poll: float,
                 resume: dict[uuid.UUID, Cursor], job_id: uuid.UUID | None = None,
                 sweep_id: uuid.UUID | None = None) -> None:
        assert (job_id is None) != (sweep_id is None)
        self.db = db
        self.job_id = job_id
        self.sweep_id = sweep_id
        self.stale_after = stale_after
        self.poll = poll
        self.resume = dict(resume)
        self.jobs: dict[uuid.UUID, _Followed] = {}
        self.places = SweepCursor([])  # a sweep's cursors, as its event ids carry them

    async def events(self) -> AsyncIterator[Event]:
        while True:
            states = await self._run(self._read_states)
            # Every job is followed before any event: each event id holds all their cursors.
            self.jobs = {state.id: self.jobs.get(state.id) or
                         _Followed(cursor=self.resume.pop(state.id, START))
                         for state, _, _ in states}
            if self.sweep_id is not None and list(self.jobs) != self.places.job_ids:
                self.places = SweepCursor(list(self.jobs))
                for job_id, job in self.jobs.items():
                    self.places.set(job_id, job.cursor)
            for state, detailed, done in states:
                job = self.jobs[state.id]
                job.drained = job.drained and done  # a job taken up again has more to send
                reset = self._reset(job, state)
                if reset is not None:
                    yield reset
                status = self._status(job, state, done) if detailed and not done else None
                if status is not None:
                    yield status
            for state, detailed, done in states:
                job = self.jobs[state.id]
                if not job.drained:
                    async for event in self._points(job, state, done):
                        yield event
                # A finished job's last status comes after its last points.
                status = self._status(job, state, done) if detailed and done else None
                if status is not None:
                    yield status
            if all(job.drained for job in self.jobs.values()):
                yield self._end()
                return
            await anyio.sleep(self.poll)

    async def _run(self, work: Callable[[Connection], T]) -> T:
        def call() -> T:
            with self.db.connect() as conn:
                return work(conn)

        # A client that leaves cancels the stream here (or in the sleep), between short reads.
        return await anyio.to_thread.run_sync(call)

    def _read_states(self, conn: Connection) -> list[tuple[store.JobState, bool, bool]]:
        """Each job's state, whether it is detailed (with summary and error: a status event
        may be due) and whether the run is over."""
        if self.sweep_id is not None:
            light = store.sweep_job_states(conn, self.sweep_id)
        else:
            assert self.job_id is not None
            light = store.job_states(conn, [self.job_id])
        stale_before = utcnow() - self.stale_after
        done = {state.id: _done(state, stale_before) for state in light}
        wanted = [state.id for state in light if self._needs_detail(state, done[state.id])]
        detailed = {state.id: state for state in store.job_states(conn, wanted, detail=True)}
        return [(detailed[s.id], True, _done(detailed[s.id], stale_before)) if s.id in detailed
                else (s, False, done[s.id]) for s in light]

    def _needs_detail(self, state: store.JobState, done: bool) -> bool:
        job = self.jobs.get(state.id)
        if job is None or job.sent is None:
            return True
        return (state.status, state.attempt) != job.sent[:2] or (done and not job.sent_done)

    def _reset(self, job: _Followed, state: store.JobState) -> Event | None:
        """Follow the job's current run; a reset event if the client holds another's points."""
        if state.attempt == job.cursor.attempt:
            return None
        had_points = job.cursor.step >= 0
        self._move(state.id, job, Cursor(state.attempt, -1))
        job.drained = False
        if not had_points:
            return None
        return Event("reset", {"job_id": str(state.id), "attempt": state.attempt},
                     self._cursor_id())

    def _status(self, job: _Followed, state: store.JobState, done: bool) -> Event | None:
        """A status event for a detailed state, unless it is the one sent last."""
        job.status = state.status
        job.sent_done = done
        key = (state.status, state.attempt, state.summary, state.error)
        if key == job.sent:
            return None
        job.sent = key
        return Event("status", {"job_id": str(state.id), "status": state.status,
                                "attempt": state.attempt, "summary": state.summary,
                                "error": state.error})

    async def _points(self, job: _Followed, state: store.JobState,
                      done: bool) -> AsyncIterator[Event]:
        """The points after the cursor; ``done`` (the run was over before they were read)
        marks the job drained once they are sent."""
        if state.attempt > 0:  # a job never claimed has no points
            def ends_of(conn: Connection) -> dict[str, int]:
                return store.series_ends(conn, state.id, state.attempt)

            ends = await self._run(ends_of)
            upto = max(ends.values(), default=-1)
            while job.cursor.step < upto:
                after = job.cursor.step

                def page_of(conn: Connection, after: int = after) -> store.Page | None:
                    return store.next_page(conn, state.id, state.attempt, after=after, upto=upto,
                                           ends=ends, max_points=MAX_POINTS)

                page = await self._run(page_of)
                if page is None:
                    return  # another run replaced the points; the next poll sees its attempt
                self._move(state.id, job, Cursor(state.attempt, page.last))
                yield Event("metrics", {
                    "job_id": str(state.id), "attempt": state.attempt,
                    "series": [{"name": name, "steps": steps, "values": values}
                               for name, steps, values in page.series]},
                    self._cursor_id())
        job.drained = done

    def _move(self, job_id: uuid.UUID, job: _Followed, cursor: Cursor) -> None:
        job.cursor = cursor
        if self.sweep_id is not None:
            self.places.set(job_id, cursor)

    def _cursor_id(self) -> str:
        if self.sweep_id is not None:
            return self.places.text()
        assert self.job_id is not None
        return format_job_cursor(self.jobs[self.job_id].cursor)

    def _end(self) -> Event:
        if self.sweep_id is not None:
            return Event("end", {"sweep_id": str(self.sweep_id), "jobs": len(self.jobs)},
                         self._cursor_id())
        assert self.job_id is not None
        job = self.jobs.get(self.job_id)
        if job is None:  # the job was deleted
            return Event("end", {"job_id": str(self.job_id), "status": None})
        return Event("end", {"job_id": str(self.job_id), "status": job.status},
                     self._cursor_id())


def _done(state: store.JobState, stale_before: datetime) -> bool:
    """Whether the job's run is over: no more points can come.

    A job succeeds or fails after its run's last write, and a failed job refuses writes; but
    a run goes on writing for a moment after its job is cancelled, until it stops and clears
    the heartbeat (or stops beating: its worker was lost).
    """
    if state.status not in FINISHED:
        return False
    if state.status != CANCELLED or state.heartbeat_at is None:
        return True
    return state.heartbeat_at < stale_before
