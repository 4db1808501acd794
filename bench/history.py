"""Reading a long history from the packed store against the one-row-per-point table it replaced.

One series of ``--steps`` points (default 1,000,000: a noisy decay ``10 / (1 + s / 1000) +
0.1 sin(s)`` with a spike of +50 every 99,991 steps), generated with numpy and stored twice
in a throwaway database: in ``metric_chunks`` through ``metrics.write_columns`` in batches of
2,000 steps (one chunk each, as a run writes it), and in the bench-only table
``point_rows(job_id, name, step, value)``, the layout the packed store replaced (primary key
(job_id, name, step), foreign key to ``jobs(id)``; SQLite: ``WITHOUT ROWID``), written as the
old ``write_points`` wrote it (binary ``COPY`` on PostgreSQL, one ``executemany`` on
SQLite). Then, each timed from a fresh connection out of the pool to the result in Python:

* ``read_history``: ``history.read_history(max_points=--max-points)`` as the API runs it:
  every chunk of the series fetched and decoded, M4 (first, last, min and max point of each
  step bucket, the buckets the narrowest whose points fit ``max_points``) chosen in numpy;
* ``read_series``: ``metrics.read_series``, every point as Python lists (what the API does
  without ``max_points``);
* ``rows cursor``: the peer, a raw ``SELECT step, value FROM point_rows ... ORDER BY step``
  with ``fetchall()`` on the DB-API cursor: the least any read of every point of the old
  layout costs;
* ``rows m4 sql`` (PostgreSQL only): M4 over point_rows in one statement, what the old
  layout allowed instead: the first and last step (an index probe), then a ``GROUP BY``
  bucket with ``min``/``max`` of the step and of ``ARRAY[value, step]``, and an index
  look-up of the chosen steps, over ``max_points // 4`` buckets (what it did before the
  bucket width was searched). Checked to return the same points as ``history.m4`` over the
  same buckets.

Exports: the first ``--export-steps`` points (default 100,000) of the same curve stored as
a second job, then ``GET /v1/jobs/{id}/metrics?names=loss`` (the JSON body) and
``GET /v1/jobs/{id}/metrics.csv?names=loss`` (the streamed CSV) through the API's metrics
routes in process (Starlette's TestClient), each checked to carry every point, timed from
request to the whole body; the ratio is CSV over JSON of the same run. The CSV's values are
checked to read back bit for bit.

PostgreSQL: a database ``optimlab_bench_<hex>`` created through the migrations on
``--postgres`` and dropped ``WITH (FORCE)`` at the end; SQLite: a temporary folder. Both
tables are analysed after the load (``VACUUM ANALYZE`` on PostgreSQL, as autovacuum would),
so plans do not change between repeats. Medians of ``--repeats`` runs with the min-max
spread; each repeat runs the readers in a rotated order; ratios are against the rows cursor
of the same run. Nothing asserts on timings.

    .venv/bin/python bench/history.py [--steps N] [--max-points N] [--repeats R]
                                      [--export-steps N] [--backend postgresql|sqlite|all]
"""

from __future__ import annotations

import argparse
import gc
import platform
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psycopg
import sqlalchemy
from fastapi import FastAPI
from fastapi.testclient import TestClient
from point_rows import add_foreign_key, create_point_rows, write_rows
from sqlalchemy import Engine
from support import load_line, positive, postgres_url

from optimlab import migrations
from optimlab.service.api.routes import metrics as metrics_routes
from optimlab.service.db import history, jobs, metrics
from optimlab.service.db.compare import plan_buckets
from optimlab.service.db.connection import make_engine
from optimlab.service.db.packing import Values

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
FLUSH_STEPS = 2000  # steps per stored batch: one chunk each
COPY_ROWS = 100_000  # point_rows written per transaction while loading
# (db, job id, max points) -> points read
Reader = Callable[[Engine, uuid.UUID, int], int]

def curve(steps: int) -> Values:
    s = np.arange(steps, dtype=np.float64)
    spikes = np.where(np.arange(steps) % 99_991 == 5, 50.0, 0.0)
    values: Values = 10.0 / (1.0 + s / 1000.0) + 0.1 * np.sin(s) + spikes
    return values


def make_history(db: Engine, steps: int) -> uuid.UUID:
    values = curve(steps).tolist()
    with db.begin() as conn:
        create_point_rows(conn, foreign_key=False)
        job = jobs.insert_job(conn, name="bench", spec={"bench": True}, queue="cpu")
    with db.begin() as conn:
        for first in range(0, steps, FLUSH_STEPS):
            part = values[first:first + FLUSH_STEPS]
            metrics.write_columns(conn, job.id,
                                  {"loss": (list(range(first, first + len(part))), part)})
    for first in range(0, steps, COPY_ROWS):
        with db.begin() as conn:
            write_rows(conn, job.id, ((step, "loss", value) for step, value in
                                     enumerate(values[first:first + COPY_ROWS], start=first)))
    with db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if db.dialect.name == "postgresql":
            add_foreign_key(conn)
            conn.exec_driver_sql("VACUUM ANALYZE metric_chunks, point_rows")
        else:
            conn.exec_driver_sql("ANALYZE")
    return job.id


# --------------------------------------------------------------------------- readers

def m4_api(db: Engine, job_id: uuid.UUID, max_points: int) -> int:
    with db.connect() as conn:
        got = history.read_history(conn, job_id, "loss", lo=None, hi=None,
                                   max_points=max_points)
    return len(got.steps)


def read_all(db: Engine, job_id: uuid.UUID, _: int) -> int:
    with db.connect() as conn:
        (series,) = metrics.read_series(conn, job_id, ["loss"])
    return len(series.steps)


def rows_cursor(db: Engine, job_id: uuid.UUID, _: int) -> int:
    raw = db.raw_connection()
    try:
        cursor = raw.cursor()
        if db.dialect.name == "postgresql":
            cursor.execute("SELECT step, value FROM point_rows WHERE job_id = %s AND name = %s "
                           "ORDER BY step", (job_id, "loss"))
        else:  # SQLAlchemy's Uuid is CHAR(32) hex on SQLite
            cursor.execute("SELECT step, value FROM point_rows WHERE job_id = ? AND name = ? "
                           "ORDER BY step", (job_id.hex, "loss"))
        rows = cursor.fetchall()
        cursor.close()
    finally:
        raw.close()
    return len(rows)


# min/max of ARRAY[value, step] is the lowest value with its earliest step and the highest
# with its latest (read_history's ties; NaN sorts above +inf in both), per bucket.
M4_SQL = """
WITH buckets AS (
    SELECT min(step) AS first, max(step) AS last,
           (min(ARRAY[value, step::float8]))[2]::bigint AS low,
           (max(ARRAY[value, step::float8]))[2]::bigint AS high
    FROM point_rows WHERE job_id = %(job)s AND name = %(name)s
    GROUP BY (step - %(lo)s) / %(width)s)
SELECT step, value FROM point_rows
WHERE job_id = %(job)s AND name = %(name)s
  AND step IN (SELECT unnest(ARRAY[first, last, low, high]) FROM buckets)
ORDER BY step
"""


def m4_sql_points(db: Engine, job_id: uuid.UUID,
                  max_points: int) -> list[tuple[int, float]]:
    raw = db.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SELECT min(step), max(step) FROM point_rows "
                       "WHERE job_id = %s AND name = %s", (job_id, "loss"))
        bounds = cursor.fetchone()
        if bounds is None or bounds[0] is None:
            raise RuntimeError(f"no points of job {job_id} in point_rows")
        first, last = bounds
        buckets = plan_buckets(int(first), int(last), max(1, max_points // history.PER_BUCKET))
        cursor.execute(M4_SQL, {"job": job_id, "name": "loss", "lo": buckets.lo,
                                "width": buckets.width})
        rows = cursor.fetchall()
        cursor.close()
    finally:
        raw.close()
    return [(int(step), float(value)) for step, value in rows]


def m4_sql(db: Engine, job_id: uuid.UUID, max_points: int) -> int:
    return len(m4_sql_points(db, job_id, max_points))


def readers(backend: str) -> dict[str, Reader]:
    in_sql = {"rows m4 sql": m4_sql} if backend == "postgresql" else {}
    return {"read_history": m4_api, "read_series": read_all, "rows cursor": rows_cursor,
            **in_sql}


def check(db: Engine, job_id: uuid.UUID, args: argparse.Namespace,
          points: dict[str, int]) -> None:
    """The readers of every point agree on the count, the two M4s on the points."""
    if points["read_series"] != args.steps or points["rows cursor"] != args.steps:
        raise RuntimeError(f"expected {args.steps} points: {points}")
    if "rows m4 sql" in points:
        with db.connect() as conn:
            steps, values = metrics.load(conn, job_id, ["loss"])["loss"]
        buckets = plan_buckets(int(steps[0]), int(steps[-1]),
                               max(1, args.max_points // history.PER_BUCKET))
        keep = history.m4(steps, history.order_key(values), buckets)
        if list(zip(steps[keep].tolist(), values[keep].tolist(), strict=True)) \
                != m4_sql_points(db, job_id, args.max_points):
            raise RuntimeError("history.m4 and the SQL M4 chose different points")


# --------------------------------------------------------------------------- exports

def export_client(db: Engine) -> TestClient:
    """The API's metrics routes over ``db``, without the rest of the app."""
    app = FastAPI()
    app.include_router(metrics_routes.router)
    app.state.db = db
    return TestClient(app)


def store_export(db: Engine, steps: int) -> uuid.UUID:
    values = curve(steps).tolist()
    with db.begin() as conn:
        job = jobs.insert_job(conn, name="bench export", spec={"bench": True}, queue="cpu")
        for first in range(0, steps, FLUSH_STEPS):
            part = values[first:first + FLUSH_STEPS]
            metrics.write_columns(conn, job.id,
                                  {"loss": (list(range(first, first + len(part))), part)})
    return job.id


def check_exports(client: TestClient, job_id: uuid.UUID, steps: int) -> None:
    body = client.get(f"/v1/jobs/{job_id}/metrics", params={"names": "loss"}).json()
    text = client.get(f"/v1/jobs/{job_id}/metrics.csv", params={"names": "loss"}).text
    lines = text.splitlines()
    if len(body["series"][0]["values"]) != steps or len(lines) != steps + 1:
        raise RuntimeError(f"expected {steps} points in both exports")
    read_back = np.array([float(line.rsplit(",", 1)[1]) for line in lines[1:]])
    if not np.array_equal(read_back.view(np.int64), curve(steps).view(np.int64)):
        raise RuntimeError("the CSV's values do not read back bit for bit")


def bench_exports(db: Engine, backend: str, args: argparse.Namespace) -> None:
    job_id = store_export(db, args.export_steps)
    routes = {"export json": f"/v1/jobs/{job_id}/metrics",
              "export csv": f"/v1/jobs/{job_id}/metrics.csv"}
    with export_client(db) as client:
        check_exports(client, job_id, args.export_steps)
        times: dict[str, list[float]] = {name: [] for name in routes}
        for repeat in range(args.repeats):
            for name in rotated(list(routes), repeat):
                begin = time.perf_counter()
                response = client.get(routes[name], params={"names": "loss"})
                response.read()
                times[name].append(time.perf_counter() - begin)
    print_rows(backend, times, peer="export json",
               points=dict.fromkeys(times, args.export_steps))


def print_rows(backend: str, times: dict[str, list[float]], *, peer: str,
               points: dict[str, int]) -> None:
    """One line per method: points, median (min-max), and the ratio to ``peer``'s median."""
    peer_median = statistics.median(times[peer])
    for name, values in times.items():
        median = statistics.median(values)
        ratio = "peer" if name == peer else f"{median / peer_median:.3f}x"
        print(f"{backend:<10} {name:<13} {points[name]:>9,} {median * 1000:>7.1f}ms "
              f"{f'{min(values) * 1000:.1f}-{max(values) * 1000:.1f}ms':>17} "
              f"{ratio:>7}", flush=True)


def rotated(names: list[str], repeat: int) -> list[str]:
    shift = repeat % len(names)
    return names[shift:] + names[:shift]


def bench(backend: str, url: str, args: argparse.Namespace) -> None:
    migrations.upgrade(url)
    db = make_engine(url)
    methods = readers(backend)
    try:
        start = time.perf_counter()
        job_id = make_history(db, args.steps)
        print(f"{backend}: {args.steps:,} steps stored in both layouts and analysed in "
              f"{time.perf_counter() - start:.1f} s")
        points = {name: reader(db, job_id, args.max_points)  # warm, and the sizes
                  for name, reader in methods.items()}
        check(db, job_id, args, points)
        times: dict[str, list[float]] = {name: [] for name in methods}
        gc.collect()
        for repeat in range(args.repeats):
            for name in rotated(list(methods), repeat):
                begin = time.perf_counter()
                methods[name](db, job_id, args.max_points)
                times[name].append(time.perf_counter() - begin)
        print(f"{'backend':<10} {'method':<13} {'points':>9} {'median':>9} {'(min-max)':>17} "
              f"{'ratio':>7}")
        print_rows(backend, times, peer="rows cursor", points=points)
        bench_exports(db, backend, args)
    finally:
        db.dispose()


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="optimlab-bench-") as folder:
        yield f"sqlite:///{Path(folder) / 'bench.db'}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=positive, default=1_000_000,
                        help="points in the history (default 1000000)")
    parser.add_argument("--max-points", type=positive, default=1000,
                        help="the downsampled budget (at least 4; default 1000)")
    parser.add_argument("--repeats", type=positive, default=5, help="runs per figure (default 5)")
    parser.add_argument("--export-steps", type=positive, default=100_000,
                        help="points in the JSON and CSV exports (default 100000)")
    parser.add_argument("--postgres", default=POSTGRES_ADMIN,
                        help="PostgreSQL server to create the throwaway database on "
                             f"(default {POSTGRES_ADMIN})")
    parser.add_argument("--backend", choices=["postgresql", "sqlite", "all"],
                        default="postgresql", help="default: postgresql")
    args = parser.parse_args(argv)
    if args.max_points < history.PER_BUCKET:
        parser.error(f"--max-points must be at least {history.PER_BUCKET}")
    print(f"history reads: Python {platform.python_version()}, SQLAlchemy "
          f"{sqlalchemy.__version__}, psycopg {psycopg.__version__}, SQLite "
          f"{sqlite3.sqlite_version}, numpy {np.__version__}; {args.steps:,} steps, "
          f"max_points {args.max_points}; median of {args.repeats} runs, min-max in "
          "brackets; ratio = median / `rows cursor` median (raw fetchall of every row of "
          "point_rows) of this run")
    print(load_line())
    if args.backend in ("sqlite", "all"):
        with sqlite_url() as url:
            bench("sqlite", url, args)
    if args.backend in ("postgresql", "all"):
        try:
            with psycopg.connect(args.postgres, connect_timeout=5) as conn:
                server = conn.info.parameter_status("server_version")
        except psycopg.OperationalError as exc:
            raise SystemExit(f"no PostgreSQL server at {args.postgres}: {exc}") from None
        print(f"PostgreSQL {server}")
        with postgres_url(args.postgres) as url:
            bench("postgresql", url, args)
    print(load_line())


if __name__ == "__main__":
    main()
