"""Histories downsampled in the database: M4 keeps each bucket's first, last, min and max."""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pytest
from sqlalchemy import Engine, delete, select

from optimlab.service.db import history, jobs, metrics
from optimlab.service.db.compare import Buckets, plan_buckets
from optimlab.service.db.connection import make_engine
from optimlab.service.db.models import Job
from tests.seed_table import SEED_SPEC


def store(db: Engine, points: dict[int, float], name: str = "loss") -> uuid.UUID:
    with db.begin() as conn:
        job = jobs.insert_job(conn, name="", spec=SEED_SPEC, queue="cpu")
        metrics.write_points(conn, job.id, [(s, name, v) for s, v in points.items()])
    return job.id


def read(db: Engine, job_id: uuid.UUID, *, max_points: int | None, lo: int | None = None,
         hi: int | None = None) -> history.History:
    with db.connect() as conn:
        return history.read_history(conn, job_id, "loss", lo=lo, hi=hi, max_points=max_points)


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def rank(value: float) -> tuple[bool, float]:
    """The documented order: -inf < finite < +inf < NaN."""
    return (True, 0.0) if math.isnan(value) else (False, value)


def spiky(rng: random.Random, steps: list[int]) -> dict[int, float]:
    """A decaying noisy loss with a few spikes up and down at random interior steps."""
    points = {s: 5.0 / (1 + i / 50) + rng.gauss(0, 0.05) for i, s in enumerate(steps)}
    for s in rng.sample(steps[1:-1], 6):
        points[s] = rng.choice([-1, 1]) * rng.uniform(20, 100)
    return points


def check_m4(points: dict[int, float], got: history.History, max_points: int) -> None:
    """Every property M4 promises, against all the points computed here in Python."""
    assert got.downsampled is not None
    assert len(got.steps) <= max_points
    assert got.steps == sorted(set(got.steps)), "steps strictly increasing"
    for step, value in zip(got.steps, got.values, strict=True):
        assert same(points[step], value), f"step {step} is not a stored point"
    kept = dict(zip(got.steps, got.values, strict=True))
    first, width = min(points), got.downsampled.bucket_width
    buckets: dict[int, list[int]] = {}
    for step in sorted(points):
        buckets.setdefault((step - first) // width, []).append(step)
    assert got.downsampled.buckets == len(range(first, max(points) + 1, width))
    assert got.downsampled.points_in_range == len(points)
    for members in buckets.values():
        assert members[0] in kept
        assert members[-1] in kept
        values = [points[s] for s in members]
        here = [kept[s] for s in members if s in kept]
        assert any(same(v, min(values, key=rank)) for v in here)
        assert any(same(v, max(values, key=rank)) for v in here)


@pytest.mark.parametrize("max_points", [4, 40, 101, 999])
def test_spikes_extremes_and_ends_survive(db: Engine, max_points: int) -> None:
    rng = random.Random(max_points)
    points = spiky(rng, list(range(1000)))
    job_id = store(db, points)

    got = read(db, job_id, max_points=max_points)

    check_m4(points, got, max_points)
    lowest = min(points, key=points.__getitem__)
    highest = max(points, key=points.__getitem__)
    kept = dict(zip(got.steps, got.values, strict=True))
    assert kept.get(lowest) == points[lowest]
    assert kept.get(highest) == points[highest]
    assert got.steps[0] == 0
    assert got.steps[-1] == 999


def test_buckets_are_of_steps_not_of_points(db: Engine) -> None:
    # Evaluations every 7 steps, starting late: buckets span steps 100..7093.
    steps = list(range(100, 7100, 7))
    points = spiky(random.Random(7), steps)
    job_id = store(db, points)

    got = read(db, job_id, max_points=60)

    check_m4(points, got, 60)
    assert got.downsampled is not None
    assert got.downsampled.bucket_width <= math.ceil((steps[-1] - steps[0] + 1) / 15)
    assert got.downsampled.buckets >= 15


def test_a_history_that_fits_comes_whole(db: Engine) -> None:
    points = {s: float(s) ** 0.5 for s in range(0, 50, 2)}
    job_id = store(db, points)

    exact = read(db, job_id, max_points=len(points))
    everything = read(db, job_id, max_points=None)

    assert exact.downsampled is None
    assert everything.downsampled is None
    assert exact.steps == everything.steps == sorted(points)
    assert exact.values == everything.values == [points[s] for s in sorted(points)]


def test_the_range_bounds_the_points_and_the_buckets(db: Engine) -> None:
    points = spiky(random.Random(3), list(range(2000)))
    job_id = store(db, points)

    got = read(db, job_id, max_points=40, lo=500, hi=1499)
    whole = read(db, job_id, max_points=None, lo=500, hi=1499)
    above = read(db, job_id, max_points=40, lo=1990)

    check_m4({s: v for s, v in points.items() if 500 <= s <= 1499}, got, 40)
    assert got.steps[0] == 500
    assert got.steps[-1] == 1499
    assert whole.steps == list(range(500, 1500))
    assert above.steps == list(range(1990, 2000))
    assert above.downsampled is None


def test_non_finite_values_are_kept_as_the_extremes_of_their_bucket(db: Engine) -> None:
    # SQLite stores NaN as NULL, PostgreSQL as NaN: both rank it above +inf.
    points = {s: 1.0 + math.sin(s / 10) for s in range(400)}
    points[105], points[190], points[333] = math.inf, -math.inf, math.nan
    points[250] = math.nan  # and a finite spike in the same bucket (200..299) as a NaN:
    points[260] = 50.0      # the NaN wins the bucket's maximum
    job_id = store(db, points)

    got = read(db, job_id, max_points=16)  # 4 buckets of 100 steps

    assert got.downsampled is not None
    assert got.downsampled.bucket_width == 100
    kept = dict(zip(got.steps, got.values, strict=True))
    assert kept[105] == math.inf
    assert kept[190] == -math.inf
    assert math.isnan(kept[250])
    assert math.isnan(kept[333])
    assert 260 not in kept
    assert got.steps == sorted(set(got.steps))
    assert len(got.steps) <= 16
    for step, value in kept.items():
        assert same(points[step], value)


def test_a_diverged_tail_of_nans_keeps_its_ends(db: Engine) -> None:
    points = {s: (10.0 - s / 100 if s < 300 else math.nan) for s in range(1000)}
    job_id = store(db, points)

    got = read(db, job_id, max_points=40)  # 10 buckets of 100 steps

    check_m4(points, got, 40)
    kept = dict(zip(got.steps, got.values, strict=True))
    for first in range(300, 1000, 100):  # an all-NaN bucket: its first and last point
        assert math.isnan(kept[first])
        assert math.isnan(kept[first + 99])
    assert kept[299] == points[299]  # the last finite value


def test_a_constant_series_keeps_first_and_last_of_each_bucket(db: Engine) -> None:
    points = dict.fromkeys(range(1000), 0.01)
    job_id = store(db, points)

    got = read(db, job_id, max_points=20)

    check_m4(points, got, 20)
    assert set(got.values) == {0.01}


def curve(kind: str, n: int) -> npt.NDArray[np.float64]:
    s = np.arange(n, dtype=np.float64)
    rng = np.random.default_rng(n)
    if kind == "monotone":
        return 10.0 / (1.0 + s / 100.0)
    if kind == "noisy":
        return 10.0 / (1.0 + s / 100.0) + rng.normal(0.0, 0.05, n)
    if kind == "spiky":  # a smooth decay with a spike up and one down every 997 steps
        values = 10.0 / (1.0 + s / 100.0)
        values[5::997] += 50.0
        values[500::997] -= 50.0
        return values
    if kind == "wavy":
        return np.sin(s / 40.0)
    return np.full(n, 0.25)  # constant


def store_array(db: Engine, values: npt.NDArray[np.float64]) -> uuid.UUID:
    with db.begin() as conn:
        job = jobs.insert_job(conn, name="", spec=SEED_SPEC, queue="cpu")
        for start in range(0, values.size, 2000):  # as a run flushes them
            part = values[start:start + 2000]
            metrics.write_columns(conn, job.id, {"loss": (
                list(range(start, start + part.size)), part.tolist())})
    return job.id


@pytest.mark.parametrize("kind", ["monotone", "noisy", "spiky", "wavy", "constant"])
def test_the_points_returned_come_close_to_max_points(db: Engine, kind: str) -> None:
    values = curve(kind, 40_000)
    job_id = store_array(db, values)
    points = dict(enumerate(values.tolist()))
    for max_points in (100, 1000):
        got = read(db, job_id, max_points=max_points)

        check_m4(points, got, max_points)
        assert 0.95 * max_points <= len(got.steps) <= max_points, (kind, max_points)
        if kind == "spiky" and max_points == 1000:  # buckets narrower than the spikes'
            # spacing: every spike is its bucket's extreme
            kept = set(got.steps)
            assert set(range(5, 40_000, 997)) | set(range(500, 40_000, 997)) <= kept


@pytest.mark.parametrize("kind", ["monotone", "noisy", "constant"])
@pytest.mark.parametrize("n", [101, 150, 250, 399, 1000])
def test_a_short_range_keeps_at_least_what_a_quarter_of_the_budget_in_buckets_would(
        db: Engine, kind: str, n: int) -> None:
    # With fewer steps than 4 x max_points the widths are a few whole steps: the count
    # can fall short of max_points, but never below M4 over max_points // 4 buckets.
    values = curve(kind, n)
    job_id = store_array(db, values)
    got = read(db, job_id, max_points=100)

    check_m4(dict(enumerate(values.tolist())), got, 100)
    quarter = history.m4(np.arange(n), history.order_key(values), plan_buckets(0, n - 1, 25))
    assert quarter.size <= len(got.steps) <= 100


@pytest.mark.parametrize("kind", ["monotone", "noisy", "wavy"])
def test_the_buckets_are_the_narrowest_that_fit(kind: str) -> None:
    # one grain narrower (more buckets) would keep more than max_points
    values = curve(kind, 200_000)
    steps = np.arange(values.size)
    keep, buckets = history.plan(steps, values, 1000)
    grain = max(1, math.ceil(values.size / 250) // history.GRAIN)
    narrower = Buckets(0, values.size - 1, buckets.width - grain)
    assert buckets.width % grain == 0
    assert keep.size <= 1000 < history.m4(steps, history.order_key(values), narrower).size
    assert keep.tolist() == history.m4(steps, history.order_key(values), buckets).tolist()


def test_fewer_than_four_points_cannot_be_promised(db: Engine) -> None:
    job_id = store(db, dict.fromkeys(range(10), 1.0))
    with pytest.raises(ValueError, match="at least 4"):
        read(db, job_id, max_points=3)


# ------------------------------------------------------------------ PostgreSQL only

@pytest.fixture
def postgres(postgres_database: str) -> Iterator[Engine]:
    """The session's PostgreSQL database; the jobs a test makes are deleted after it."""
    db = make_engine(postgres_database)
    with db.connect() as conn:
        before = set(conn.scalars(select(Job.id)))
    yield db
    with db.begin() as conn:
        made = set(conn.scalars(select(Job.id))) - before
        if made:
            conn.execute(delete(Job).where(Job.id.in_(made)))
    db.dispose()


def test_a_series_stored_in_many_batches_reads_as_one(db: Engine,
                                                      postgres: Engine) -> None:
    rng = random.Random(11)
    points = spiky(rng, sorted(rng.sample(range(50_000), 5000)))
    for value in (math.nan, math.nan, math.inf, -math.inf, -0.0):
        points[rng.choice(list(points))] = value
    tail = max(points) + 1
    points.update(dict.fromkeys(range(tail, tail + 300), 2.5))  # a constant stretch: ties
    steps = sorted(points)
    for backend in (db, postgres):
        whole = store(backend, points)
        with backend.begin() as conn:  # the same points in batches of 1 to 400 points
            job = jobs.insert_job(conn, name="", spec=SEED_SPEC, queue="cpu")
            start = 0
            while start < len(steps):
                part = steps[start:start + rng.randint(1, 400)]
                metrics.write_points(conn, job.id, [(s, "loss", points[s]) for s in part])
                start += len(part)
        with backend.connect() as conn:
            for lo, hi, max_points in ((None, None, None), (None, None, 100), (777, 30_001, 40),
                                       (tail - 5, None, 8), (123, 123, None)):
                one = history.read_history(conn, whole, "loss", lo=lo, hi=hi,
                                           max_points=max_points)
                many = history.read_history(conn, job.id, "loss", lo=lo, hi=hi,
                                            max_points=max_points)
                assert many.steps == one.steps
                assert all(same(a, b) and math.copysign(1, a) == math.copysign(1, b)
                           for a, b in zip(many.values, one.values, strict=True))
                assert many.downsampled == one.downsampled
            every = history.read_history(conn, job.id, "loss", lo=None, hi=None,
                                         max_points=None)
        assert every.steps == steps
        assert all(same(v, points[s]) for s, v in zip(every.steps, every.values, strict=True))


def test_a_million_steps_downsample_to_a_thousand_points(postgres: Engine) -> None:
    rng = random.Random()
    n = 1_000_000
    spike_up, spike_down = rng.sample(range(1, n - 1), 2)
    steps = np.arange(n)
    values = 10.0 / (1 + steps / 1000.0) + 0.1 * np.sin(steps)  # a noisy decay ...
    values[spike_up], values[spike_down] = 1e6, -1e6  # ... with two planted spikes
    with postgres.begin() as conn:
        job = jobs.insert_job(conn, name="", spec=SEED_SPEC, queue="cpu")
        for start in range(0, n, 2000):  # as a run flushes them
            part = slice(start, start + 2000)
            metrics.write_columns(conn, job.id, {"loss": (steps[part].tolist(),
                                                          values[part].tolist())})

    with postgres.connect() as conn:
        got = history.read_history(conn, job.id, "loss", lo=None, hi=None, max_points=1000)

    assert len(got.steps) <= 1000
    assert got.downsampled is not None
    assert got.downsampled.points_in_range == n
    assert all(a < b for a, b in zip(got.steps, got.steps[1:], strict=False))
    kept = dict(zip(got.steps, got.values, strict=True))
    assert kept[spike_down] == -1e6
    assert kept[spike_up] == 1e6
    assert min(got.values) == -1e6
    assert max(got.values) == 1e6
    assert kept[0] == values[0]
    assert kept[n - 1] == values[-1]
    assert kept == {int(s): float(values[s]) for s in got.steps}  # every kept point is stored
