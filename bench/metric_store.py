"""Throughput of the packed metric store against the one-row-per-point table it replaced.

The store keeps a series as chunks, one ``metric_chunks`` row per series per written batch
(values packed as float64, steps as int64 or nothing when consecutive). The peer is the
layout it replaced, rebuilt here as the bench-only table ``point_rows(job_id, name, step,
value)``: primary key (job_id, name, step), a foreign key to ``jobs(id)`` like the old
``metrics`` table (SQLite: ``WITHOUT ROWID``), written the way the old ``write_points``
wrote it.

Writes: the engine flushes points as ``(step, name, value)``, three series per step
(``loss``, ``lr``, ``param.x``), in batches of 1k or 20k points (20k is the engine's
``FLUSH_POINTS`` cap). A timed run stores ``--rows`` points (at least one batch) as
consecutive flushes, each in its own transaction, by

* ``write_points``: ``optimlab.service.db.metrics.write_points`` alone (a chunk per
  series: three rows per flush);
* ``worker sink``: ``SqlJobsSink.write``, the worker's whole flush (lock the job row,
  write_points, save the progress summary);
* ``rows bulk``: the peer, the previous ``write_points`` into ``point_rows``: binary
  ``COPY ... FROM STDIN`` through psycopg 3 on PostgreSQL, one driver-level
  ``executemany`` (``conn.exec_driver_sql``, tuples) on SQLite;
* ``rows naive``: one ``INSERT`` statement per point through SQLAlchemy Core into
  ``point_rows``, all points of the flush in one transaction.

Reads: one series of ``--read-points`` points (the job holds three such series, written as
a run writes them: flushes of 2,000 steps, into both layouts), read by

* ``read_series``: ``metrics.read_series``, the points as Python lists (what the API's
  full-history read returns);
* ``load``: ``metrics.load``, the same points as numpy arrays (what downsampling,
  comparisons and summaries read);
* ``rows cursor``: the peer, a raw ``SELECT step, value FROM point_rows ... ORDER BY
  step`` with ``fetchall()`` on the DB-API cursor.

PostgreSQL: a throwaway database ``optimlab_bench_<hex>`` created through the migrations on
``--postgres`` and dropped ``WITH (FORCE)`` at the end; SQLite: a temporary folder. Medians
of ``--repeats`` runs (``--naive-repeats`` for the slow naive writer) with the min-max
spread; ratios are against the peer measured in the same run, and each repeat runs the
methods in a rotated order. Both tables are emptied (and SQLite's WAL checkpointed) before
every timed write, so each run starts alike, and every write is checked by counting the
points stored. The process imports torch (through the worker's modules), as the worker
does: a full garbage collection then takes ~0.2 s, and when one falls inside a timed run
it shows in the spread; ``--freeze-gc`` takes the import-time objects out of it.

    .venv/bin/python bench/metric_store.py [--rows N] [--batch N ...] [--read-points N]
                                           [--repeats R] [--backend sqlite|postgresql|all]
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import sqlalchemy
from point_rows import create_point_rows, point_rows, write_rows
from sqlalchemy import (
    Engine,
    Uuid,
    bindparam,
    insert,
    text,
)
from support import load_line, positive, postgres_url

from optimlab import migrations
from optimlab.service.db import jobs, metrics
from optimlab.service.db.connection import make_engine
from optimlab.service.db.models import utcnow
from optimlab.worker.engine import MetricPoint, TrainingSummary
from optimlab.worker.engine.sink import point_columns
from optimlab.worker.sql_sink import SqlJobsSink

SERIES = ("loss", "lr", "param.x")
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
READ_FLUSH_STEPS = 2000  # steps per flush of the series read back


def make_points(first_step: int, rows: int, rng: random.Random) -> list[MetricPoint]:
    """``rows`` points in the engine's order: every series of a step, step after step."""
    points: list[MetricPoint] = []
    step = first_step
    while len(points) < rows:
        points.extend((step, name, rng.uniform(-10.0, 10.0)) for name in SERIES)
        step += 1
    return points[:rows]


def in_batches(total: int, batch: int, rng: random.Random) -> list[list[MetricPoint]]:
    """``total`` points of consecutive steps, as flushes of ``batch`` points each."""
    points = make_points(0, total, rng)
    return [points[first:first + batch] for first in range(0, total, batch)]


# --------------------------------------------------------------------------- a store

@dataclass
class Store:
    backend: str
    db: Engine
    claim: jobs.Claim
    sink: SqlJobsSink | None = None  # the worker sink's, one per run as a worker has

    def empty(self) -> None:
        self.sink = None
        with self.db.begin() as conn:
            if self.backend == "postgresql":
                conn.execute(text("TRUNCATE metric_chunks, point_rows"))
            else:
                conn.execute(text("DELETE FROM metric_chunks"))
                conn.execute(text("DELETE FROM point_rows"))
        if self.backend == "sqlite":  # start every run with an empty write-ahead log
            with self.db.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def count(self, job_id: uuid.UUID) -> int:
        """Points the job holds in either layout (a run writes to one of them)."""
        query = text("SELECT (SELECT coalesce(sum(count), 0) FROM metric_chunks "
                     "WHERE job_id = :j) + (SELECT count(*) FROM point_rows WHERE job_id = :j)"
                     ).bindparams(bindparam("j", type_=Uuid))
        with self.db.connect() as conn:
            return int(conn.scalar(query, {"j": job_id}) or 0)

    def analyse(self) -> None:
        with self.db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE metric_chunks, point_rows"
                                 if self.backend == "postgresql" else "ANALYZE")


def new_job(db: Engine) -> jobs.Claim:
    """A job claimed as a worker claims it: the fence SqlJobsSink writes under."""
    with db.begin() as conn:
        job = jobs.insert_job(conn, name="bench", spec={"bench": True}, queue="cpu")
        claim = jobs.claim_job(conn, job.id, worker="bench", stale_before=utcnow(),
                               max_attempts=3)
    assert claim is not None
    return claim


def open_store(backend: str, url: str) -> Store:
    migrations.upgrade(url)
    db = make_engine(url)
    with db.begin() as conn:
        create_point_rows(conn)
    return Store(backend, db, new_job(db))


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="optimlab-bench-") as folder:
        yield f"sqlite:///{Path(folder) / 'bench.db'}"


# --------------------------------------------------------------------------- writers

Writer = Callable[[Store, list[MetricPoint]], None]


def write_points(store: Store, batch: list[MetricPoint]) -> None:
    with store.db.begin() as conn:
        metrics.write_points(conn, store.claim.job_id, batch)


def worker_sink(store: Store, batch: list[MetricPoint]) -> None:
    summary = TrainingSummary(device="cpu", parameter_count=1,
                              steps_done=batch[-1][0] + 1, final_loss=batch[-1][2])
    if store.sink is None:
        store.sink = SqlJobsSink(store.db, [store.claim], threaded=False)
    if not store.sink.write([(0, point_columns(batch), summary)])[0]:
        raise RuntimeError("the sink refused the write")


def write_rows_bulk(store: Store, batch: list[MetricPoint]) -> None:
    with store.db.begin() as conn:
        write_rows(conn, store.claim.job_id, batch)


NAIVE_INSERT = insert(point_rows)


def write_rows_naive(store: Store, batch: list[MetricPoint]) -> None:
    job_id = store.claim.job_id
    with store.db.begin() as conn:
        for step, name, value in batch:
            conn.execute(NAIVE_INSERT,
                         {"job_id": job_id, "name": name, "step": step, "value": value})


WRITERS: dict[str, Writer] = {
    "write_points": write_points,
    "worker sink": worker_sink,
    "rows bulk": write_rows_bulk,
    "rows naive": write_rows_naive,
}
WRITE_PEER = "rows bulk"


def time_writes(store: Store, writer: Writer, batches: list[list[MetricPoint]]) -> float:
    """Points per second of storing ``batches``, one transaction each, into empty tables
    (the worker's sink also stores a ``wall_time`` point per batch, not counted)."""
    store.empty()
    rows = sum(len(b) for b in batches)
    extra = len(batches) if writer is worker_sink else 0
    start = time.perf_counter()
    for batch in batches:
        writer(store, batch)
    elapsed = time.perf_counter() - start
    stored = store.count(store.claim.job_id) - extra
    if stored != rows:
        raise RuntimeError(f"{stored} points stored, {rows} written")
    return rows / elapsed


# --------------------------------------------------------------------------- readers

Reader = Callable[[Store, uuid.UUID, str], int]


def read_series(store: Store, job_id: uuid.UUID, name: str) -> int:
    with store.db.connect() as conn:
        (series,) = metrics.read_series(conn, job_id, [name])
    return len(series.steps)


def load(store: Store, job_id: uuid.UUID, name: str) -> int:
    with store.db.connect() as conn:
        steps, _ = metrics.load(conn, job_id, [name])[name]
    return int(steps.size)


def rows_cursor(store: Store, job_id: uuid.UUID, name: str) -> int:
    raw = store.db.raw_connection()
    try:
        cursor = raw.cursor()
        if store.backend == "postgresql":
            cursor.execute("SELECT step, value FROM point_rows WHERE job_id = %s AND name = %s "
                           "ORDER BY step", (job_id, name))
        else:  # SQLAlchemy's Uuid is CHAR(32) hex on SQLite
            cursor.execute("SELECT step, value FROM point_rows WHERE job_id = ? AND name = ? "
                           "ORDER BY step", (job_id.hex, name))
        rows = cursor.fetchall()
        cursor.close()
    finally:
        raw.close()
    return len(rows)


READERS: dict[str, Reader] = {"read_series": read_series, "load": load,
                              "rows cursor": rows_cursor}
READ_PEER = "rows cursor"


def time_read(reader: Reader, store: Store, job_id: uuid.UUID, expected: int) -> float:
    start = time.perf_counter()
    got = reader(store, job_id, "loss")
    elapsed = time.perf_counter() - start
    if got != expected:
        raise RuntimeError(f"read {got} points, expected {expected}")
    return got / elapsed


# --------------------------------------------------------------------------- report

def fmt_rate(value: float) -> str:
    return f"{value / 1000:.1f}k" if value < 1e6 else f"{value / 1e6:.2f}M"


def fmt_count(count: int | None) -> str:
    if count is None:
        return "-"
    return f"{count // 1000}k" if count % 1000 == 0 else str(count)


def print_rows(backend: str, batch: int | None, points: int,
               rates: dict[str, list[float]], peer: str) -> None:
    peer_median = statistics.median(rates[peer])
    for name, values in rates.items():
        median = statistics.median(values)
        spread = f"{fmt_rate(min(values))}-{fmt_rate(max(values))}"
        ratio = "peer" if name == peer else f"{median / peer_median:.2f}x"
        print(f"{backend:<10} {name:<13} {fmt_count(batch):>6} {fmt_count(points):>6} "
              f"{fmt_rate(median):>9}/s  {spread:>17}  {ratio:>7}", flush=True)


def rotated(names: list[str], repeat: int) -> list[str]:
    """Each repeat starts from a different method: none always runs first or after the same."""
    shift = repeat % len(names)
    return names[shift:] + names[:shift]


def bench_writes(store: Store, args: argparse.Namespace, rng: random.Random) -> None:
    for size in args.batch:
        total = max(size, args.rows)
        batches = in_batches(total, size, rng)
        for writer in WRITERS.values():  # warm: connections, compiled statements
            time_writes(store, writer, [batches[0][:300]])
        rates: dict[str, list[float]] = {name: [] for name in WRITERS}
        gc.collect()  # once: a full collection takes ~0.2 s with torch loaded
        for repeat in range(max(args.repeats, args.naive_repeats)):
            for name in rotated(list(WRITERS), repeat):
                wanted = args.naive_repeats if name == "rows naive" else args.repeats
                if repeat < wanted:
                    rates[name].append(time_writes(store, WRITERS[name], batches))
        print_rows(store.backend, size, total, rates, WRITE_PEER)


def bench_reads(store: Store, args: argparse.Namespace, rng: random.Random) -> None:
    store.empty()
    job_id = new_job(store.db).job_id
    points = args.read_points
    # As a run writes them: flushes of READ_FLUSH_STEPS steps of all three series.
    for batch in in_batches(points * len(SERIES), READ_FLUSH_STEPS * len(SERIES), rng):
        with store.db.begin() as conn:
            metrics.write_points(conn, job_id, batch)
            write_rows(conn, job_id, batch)
    if store.count(job_id) != 2 * points * len(SERIES):
        raise RuntimeError("the series to read were not stored whole")
    store.analyse()
    for reader in READERS.values():  # warm
        time_read(reader, store, job_id, points)
    rates: dict[str, list[float]] = {name: [] for name in READERS}
    gc.collect()
    for repeat in range(args.repeats):
        for name in rotated(list(READERS), repeat):
            rates[name].append(time_read(READERS[name], store, job_id, points))
    print_rows(store.backend, None, points, rates, READ_PEER)


def bench_backend(backend: str, url: str, args: argparse.Namespace) -> None:
    store = open_store(backend, url)
    rng = random.Random(20261125)
    try:
        bench_writes(store, args, rng)
        bench_reads(store, args, rng)
    finally:
        store.db.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=positive, default=20_000,
                        help="points per timed write run (at least one batch; default 20000)")
    parser.add_argument("--batch", type=positive, nargs="+", default=[1000, 20_000],
                        help="points per flush (default: 1000 20000)")
    parser.add_argument("--read-points", type=positive, default=100_000,
                        help="points of the series read back (default 100000)")
    parser.add_argument("--repeats", type=positive, default=5, help="runs per figure (default 5)")
    parser.add_argument("--naive-repeats", type=positive, default=3,
                        help="runs of the slow naive writer (default 3)")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--postgres", default=POSTGRES_ADMIN,
                        help="PostgreSQL server to create the throwaway database on "
                             f"(default {POSTGRES_ADMIN})")
    parser.add_argument("--freeze-gc", action="store_true",
                        help="gc.freeze() after start-up, so full collections skip the "
                             "objects of the imports (torch): shows what GC costs the store")
    args = parser.parse_args(argv)
    if args.freeze_gc:
        gc.collect()
        gc.freeze()

    print(f"metric store: Python {platform.python_version()}, SQLAlchemy "
          f"{sqlalchemy.__version__}, psycopg {psycopg.__version__}, SQLite "
          f"{sqlite3.sqlite_version}; median of {args.repeats} runs (rows naive: "
          f"{args.naive_repeats}), min-max in brackets"
          + ("; gc.freeze() after start-up" if args.freeze_gc else ""))
    print("writes: points/s storing `points` points as flushes of `batch` points, one "
          "transaction each, into emptied tables; ratio = median / `rows bulk` median "
          "(the old write_points into point_rows) of this run")
    print(f"reads: points/s of one series of {args.read_points:,} points; ratio = median / "
          "`rows cursor` median (raw fetchall from point_rows) of this run")
    print(load_line())
    print(f"{'backend':<10} {'method':<13} {'batch':>6} {'points':>6} {'median':>11}  "
          f"{'(min-max)':>17}  {'ratio':>7}")
    if args.backend in ("sqlite", "all"):
        with sqlite_url() as url:
            bench_backend("sqlite", url, args)
    if args.backend in ("postgresql", "all"):
        try:
            with psycopg.connect(args.postgres, connect_timeout=5) as conn:
                server = conn.info.parameter_status("server_version")
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            print(f"postgresql: skipped, no server at {args.postgres} ({reason})")
            return
        print(f"PostgreSQL {server}")
        with postgres_url(args.postgres) as url:
            bench_backend("postgresql", url, args)
    print(load_line())


if __name__ == "__main__":
    main()
