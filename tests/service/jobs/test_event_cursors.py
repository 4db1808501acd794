"""Event ids of the live streams: what a stream sends reads back as the same cursor."""

from __future__ import annotations

import base64
import struct
import uuid
import zlib

import pytest

from optimlab.service.jobs.events import (
    MAX_STEP,
    Cursor,
    InvalidEventId,
    SweepCursor,
    format_job_cursor,
    parse_job_cursor,
)


@pytest.mark.parametrize("cursor", [Cursor(0, -1), Cursor(1, 0), Cursor(3, 99_999_999),
                                    Cursor(2**31 - 1, MAX_STEP)])
def test_a_job_cursor_reads_back(cursor: Cursor) -> None:
    assert parse_job_cursor(format_job_cursor(cursor)) == cursor


def test_a_job_cursor_is_attempt_colon_step() -> None:
    assert format_job_cursor(Cursor(2, 41)) == "2:41"
    assert parse_job_cursor(" 2:41 ") == Cursor(2, 41)


@pytest.mark.parametrize("text", ["", "2", "2:", ":4", "a:4", "2:4:5", "2:-2", "-1:0", "2:4.0",
                                  "2:99999999999999999999", "4294967296:0",
                                  f"1:{MAX_STEP + 1}"])
def test_other_job_cursors_are_refused(text: str) -> None:
    with pytest.raises(InvalidEventId):
        parse_job_cursor(text)


def sweep_cursor(cursors: dict[uuid.UUID, Cursor]) -> SweepCursor:
    packed = SweepCursor(list(cursors))
    for job_id, cursor in cursors.items():
        packed.set(job_id, cursor)
    return packed


def test_a_sweep_cursor_reads_back_and_leaves_out_jobs_with_nothing_sent() -> None:
    jobs = [uuid.uuid4() for _ in range(5)]
    cursors = {jobs[0]: Cursor(1, 0), jobs[1]: Cursor(2, 123_456_789), jobs[2]: Cursor(1, -1),
               jobs[3]: Cursor(0, -1), jobs[4]: Cursor(2**31 - 1, MAX_STEP)}
    text = sweep_cursor(cursors).text()
    assert text.startswith("s.")
    assert SweepCursor(jobs).parse(text) == {j: c for j, c in cursors.items() if c != Cursor()}
    assert SweepCursor([]).parse(SweepCursor([]).text()) == {}


def test_a_sweep_cursor_stays_short_for_thousands_of_jobs() -> None:
    jobs = [uuid.uuid4() for _ in range(5000)]
    done = {job_id: Cursor(1, 9_999) for job_id in jobs[:3000]}  # the same history each
    running = {job_id: Cursor(1 + i % 2, 1_000 + 37 * i)
               for i, job_id in enumerate(jobs[3000:3040])}
    cursors = {**{job_id: Cursor() for job_id in jobs}, **done, **running}
    text = sweep_cursor(cursors).text()
    assert len(text) < 2_000
    assert SweepCursor(jobs).parse(text) == {**done, **running}


def test_other_sweep_cursors_are_refused() -> None:
    jobs = [uuid.uuid4(), uuid.uuid4()]
    good = sweep_cursor({jobs[0]: Cursor(1, 5), jobs[1]: Cursor()}).text()
    assert SweepCursor(jobs).parse(good) == {jobs[0]: Cursor(1, 5)}
    other_jobs = [SweepCursor(jobs[:1]), SweepCursor([*jobs, uuid.uuid4()]),
                  SweepCursor(jobs[::-1])]
    for sweep in other_jobs:
        with pytest.raises(InvalidEventId, match="not an event id of this sweep's stream"):
            sweep.parse(good)
    raw = zlib.decompress(base64.urlsafe_b64decode(good[2:] + "=="))
    for text in ["", "1:5", "s", "s.", "s.!!", "s.AAAA", good[:-4], "x" + good[1:],
                 good + "A", _packed(raw + b"\0"), _packed(raw[:-1]),
                 _packed(b"\2" + raw[1:]), _packed(raw + b"\0" * 10_000_000)]:
        with pytest.raises(InvalidEventId):
            SweepCursor(jobs).parse(text)
    with pytest.raises(InvalidEventId, match="out of range"):
        SweepCursor(jobs).parse(_packed(raw[:9] + struct.pack(">IQ", 2**31, 1) + raw[21:]))


def _packed(raw: bytes) -> str:
    return "s." + base64.urlsafe_b64encode(zlib.compress(raw)).decode().rstrip("=")
