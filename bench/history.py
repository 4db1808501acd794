"""Reading a long history: downsampled in the database vs every point into Python.

One series of ``--steps`` points (default 1,000,000: a noisy decay with a spike every
99,991 steps; PostgreSQL writes it with ``INSERT ... SELECT generate_series``, SQLite
gets the same values through ``write_points``), read by

* ``read_history``: ``history.read_history(max_points=...)`` as the API runs it: a
  prefix probe, then on PostgreSQL one hash aggregate (first, last, arg-min and arg-max
  of each bucket) and one index look-up of the chosen points; on SQLite the portable
  query below;
* ``m4 portable`` (PostgreSQL only): the query SQLite gets (a grouping per bucket, then
  look-ups along the primary key for the steps of the extremes), run on PostgreSQL;
* ``read_series``: ``metrics.read_series``, every point into Python (what the API does
  without ``max_points``);
* ``raw cursor``: the peer, a raw ``SELECT step, value ... ORDER BY step`` with
  ``fetchall()`` on the DB-API cursor: the least any read of every point costs.

PostgreSQL: a throwaway database ``optimlab_bench_<hex>`` created through the migrations
on ``--postgres`` and dropped ``WITH (FORCE)`` at the end; SQLite: a temporary folder.
The table is analysed after the insert (``VACUUM ANALYZE`` on PostgreSQL, as autovacuum
would), so plans do not change between repeats. Medians of ``--repeats`` runs with the
min-max spread; each repeat runs the readers in a rotated order; ratios are against the
raw cursor of the same run. Nothing asserts on timings.

    .venv/bin/python bench/history.py [--steps N] [--max-points N] [--repeats R]
                                      [--backend postgresql|sqlite|all]
"""

from __future__ import annotations

import argparse
import gc
import math
import platform
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import sqlalchemy
from sqlalchemy import Engine, text
from support import load_line, positive, postgres_url

from optimlab import migrations
from optimlab.service.db import history, jobs, metrics
from optimlab.service.db.compare import plan_buckets
from optimlab.service.db.connection import make_engine

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
# (engine, job id, max points) -> points read
Reader = Callable[[Engine, uuid.UUID, int], int]


def make_history(engine: Engine, steps: int) -> uuid.UUID:
    with engine.begin() as conn:
        job = jobs.insert_job(conn, name="bench", spec={"bench": True}, queue="cpu")
        if engine.dialect.name == "postgresql":
            conn.execute(text(
                "INSERT INTO metrics (job_id, name, step, value) "
                "SELECT :job, 'loss', s, 10.0 / (1 + s / 1000.0) + 0.1 * sin(s) "
                "+ CASE WHEN s % 99991 = 5 THEN 50 ELSE 0 END "
                "FROM generate_series(0, :last) AS s"), {"job": job.id, "last": steps - 1})
        else:  # no generate_series (nor sin) in Python's SQLite: the same values from here
            for first in range(0, steps, 100_000):
                metrics.write_points(conn, job.id, [
                    (s, "loss", 10.0 / (1 + s / 1000.0) + 0.1 * math.sin(s)
                     + (50 if s % 99991 == 5 else 0))
                    for s in range(first, min(first + 100_000, steps))])
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE metrics" if engine.dialect.name == "postgresql"
                             else "ANALYZE")
    return job.id


def m4_api(engine: Engine, job_id: uuid.UUID, max_points: int) -> int:
    with engine.connect() as conn:
        got = history.read_history(conn, job_id, "loss", lo=None, hi=None,
                                   max_points=max_points)
    return len(got.steps)


def m4_portable(engine: Engine, job_id: uuid.UUID, max_points: int) -> int:
    # The buckets read_history plans (from the first and last step), then the portable query.
    with engine.connect() as conn:
        first, last = conn.execute(text(
            "SELECT min(step), max(step) FROM metrics WHERE job_id = :j AND name = 'loss'"),
            {"j": job_id}).one()
        buckets = plan_buckets(int(first), int(last), max_points // history.PER_BUCKET)
        chosen, _ = history._m4_seeks(conn, job_id, "loss", buckets)
    return len(chosen)


def read_all(engine: Engine, job_id: uuid.UUID, _: int) -> int:
    with engine.connect() as conn:
        (series,) = metrics.read_series(conn, job_id, ["loss"])
    return len(series.steps)


def raw_cursor(engine: Engine, job_id: uuid.UUID, _: int) -> int:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "postgresql":
            cursor.execute("SELECT step, value FROM metrics WHERE job_id = %s AND name = %s "
                           "ORDER BY step", (job_id, "loss"))
        else:  # SQLAlchemy's Uuid is CHAR(32) hex on SQLite
            cursor.execute("SELECT step, value FROM metrics WHERE job_id = ? AND name = ? "
                           "ORDER BY step", (job_id.hex, "loss"))
        rows = cursor.fetchall()
        cursor.close()
    finally:
        raw.close()
    return len(rows)


def readers(backend: str) -> dict[str, Reader]:
    # On SQLite read_history runs the portable query itself.
    portable = {"m4 portable": m4_portable} if backend == "postgresql" else {}
    return {"read_history": m4_api, **portable, "read_series": read_all,
            "raw cursor": raw_cursor}


def rotated(names: list[str], repeat: int) -> list[str]:
    shift = repeat % len(names)
    return names[shift:] + names[:shift]


def bench(backend: str, url: str, args: argparse.Namespace) -> None:
    migrations.upgrade(url)
    engine = make_engine(url)
    methods = readers(backend)
    try:
        start = time.perf_counter()
        job_id = make_history(engine, args.steps)
        print(f"{backend}: {args.steps:,} steps inserted and analysed in "
              f"{time.perf_counter() - start:.1f} s")
        points = {name: reader(engine, job_id, args.max_points)  # warm, and the sizes
                  for name, reader in methods.items()}
        if points["read_history"] != points.get("m4 portable", points["read_history"]):
            raise RuntimeError(f"the two M4 queries disagree: {points}")
        times: dict[str, list[float]] = {name: [] for name in methods}
        gc.collect()
        for repeat in range(args.repeats):
            for name in rotated(list(methods), repeat):
                begin = time.perf_counter()
                methods[name](engine, job_id, args.max_points)
                times[name].append(time.perf_counter() - begin)
        peer = statistics.median(times["raw cursor"])
        print(f"{'backend':<10} {'method':<13} {'points':>9} {'median':>9} {'(min-max)':>17} "
              f"{'vs raw':>7}")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"{backend:<10} {name:<13} {points[name]:>9,} {median * 1000:>7.0f}ms "
                  f"{f'{min(values) * 1000:.0f}-{max(values) * 1000:.0f}ms':>17} "
                  f"{median / peer:>6.2f}x", flush=True)
    finally:
        engine.dispose()


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
          f"{sqlite3.sqlite_version}; {args.steps:,} steps, max_points {args.max_points}; "
          f"median of {args.repeats} runs, min-max in brackets; ratio = median / raw-cursor "
          "median of this run")
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
