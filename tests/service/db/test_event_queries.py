"""The event streams' queries: series ends and pages of whole steps, fenced by the attempt."""

from __future__ import annotations

import itertools
import math
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from optimlab.service.db import events, jobs, metrics
from optimlab.service.db.metrics import Point
from tests.seed_table import SEED_SPEC


def claimed_job(db: Engine) -> jobs.Claim:
    with db.begin() as conn:
        job = jobs.insert_job(conn, name="events", spec=SEED_SPEC, queue="cpu")
        claim = jobs.claim_job(conn, job.id, worker="test", max_attempts=5,
                               stale_before=datetime.now(UTC).replace(tzinfo=None)
                               - timedelta(seconds=60))
    assert claim is not None
    return claim


def history() -> list[Point]:
    """Steps 0..299 with gaps (none at 100..199), a series every step and one every 7th,
    and one that starts late."""
    points: list[Point] = []
    for step in [*range(100), *range(200, 300)]:
        points += [(step, "loss", 1.0 / (step + 1)), (step, "lr", 0.1)]
        if step % 7 == 0:
            points.append((step, "val_loss", math.nan if step == 14 else 2.0 * step))
        if step >= 250:
            points.append((step, "late", float(step)))
    return points


def test_pages_hold_whole_steps_and_every_point_once(db: Engine) -> None:
    claim = claimed_job(db)
    points = history()
    with db.begin() as conn:
        metrics.write_points(conn, claim.job_id, points)

    with db.connect() as conn:
        ends = events.series_ends(conn, claim.job_id, claim.attempt)
        assert ends == {"late": 299, "loss": 299, "lr": 299, "val_loss": 294}
        upto = max(ends.values())
        after, pages = -1, []
        while after < upto:
            page = events.next_page(conn, claim.job_id, claim.attempt, after=after, upto=upto,
                                    ends=ends, max_points=40)
            assert page is not None
            assert page.last > after
            assert 0 < page.size <= 40
            pages.append(page)
            after = page.last

    got = [(step, name, _finite(value)) for page in pages for name, steps, values in page.series
           for step, value in zip(steps, values, strict=True)]
    expected = [(s, n, _finite(v)) for s, n, v in points]
    assert sorted(got, key=lambda p: (p[0], p[1])) == sorted(expected, key=lambda p: (p[0], p[1]))
    assert len(got) == len({(s, n) for s, n, _ in got})
    # no step is split between two pages
    steps_of = [{s for _, steps, _ in page.series for s in steps} for page in pages]
    for before, later in itertools.pairwise(steps_of):
        assert max(before) < min(later)


def _finite(value: float) -> float | None:
    # NaN is NULL in SQLite, NaN in PostgreSQL: both are null in an event
    return value if math.isfinite(value) else None


def test_a_page_never_goes_past_upto(db: Engine) -> None:
    claim = claimed_job(db)
    with db.begin() as conn:
        metrics.write_points(conn, claim.job_id, [(s, "loss", 1.0) for s in range(10)])
        ends = events.series_ends(conn, claim.job_id, claim.attempt)
    with db.begin() as conn:  # a later batch: not in the ends read before it
        metrics.write_points(conn, claim.job_id,
                             [(s, n, 1.0) for s in range(10, 20) for n in ("loss", "new")])
    with db.connect() as conn:
        page = events.next_page(conn, claim.job_id, claim.attempt, after=-1, upto=9, ends=ends,
                                max_points=1000)
    assert page is not None
    assert page.last == 9
    assert page.series == [("loss", list(range(10)), [1.0] * 10)]


def test_reads_name_the_attempt_and_find_nothing_once_another_run_claimed_the_job(
        db: Engine) -> None:
    claim = claimed_job(db)
    with db.begin() as conn:
        metrics.write_points(conn, claim.job_id, [(s, "loss", 1.0) for s in range(10)])
    with db.connect() as conn:
        ends = events.series_ends(conn, claim.job_id, claim.attempt)
        assert events.series_ends(conn, claim.job_id, claim.attempt + 1) == {}
        assert events.next_page(conn, claim.job_id, claim.attempt + 1, after=-1, upto=9,
                                ends=ends, max_points=100) is None
        page = events.next_page(conn, claim.job_id, claim.attempt, after=4, upto=9, ends=ends,
                                max_points=100)
    assert page is not None
    assert page.series == [("loss", [5, 6, 7, 8, 9], [1.0] * 5)]


def test_job_states_and_a_sweeps_jobs(db: Engine) -> None:
    from optimlab.service.db import sweeps

    with db.begin() as conn:
        sweep = sweeps.insert_sweep(conn, name="s", request={}, size=2, tags=[])
        first = jobs.insert_job(conn, name="a", spec=SEED_SPEC, queue="cpu", sweep_id=sweep.id)
        second = jobs.insert_job(conn, name="b", spec=SEED_SPEC, queue="cpu", sweep_id=sweep.id)
        jobs.insert_job(conn, name="alone", spec=SEED_SPEC, queue="cpu")
    with db.connect() as conn:
        in_sweep = events.sweep_job_states(conn, sweep.id)
        detailed = events.job_states(conn, [first.id, uuid.uuid4()], detail=True)
    assert {s.id for s in in_sweep} == {first.id, second.id}
    assert all(s.status == "queued" and s.attempt == 0 for s in in_sweep)
    assert [(s.id, s.summary, s.error) for s in detailed] == [(first.id, None, None)]
