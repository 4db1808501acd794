"""Throughput of the metric store, written and read the way the worker and the API do.

Writes: the engine flushes points as ``(step, name, value)``, three series per step
(``loss``, ``lr``, ``param.x``), in batches of 1k or 20k rows (20k is the engine's
``FLUSH_POINTS`` cap). A timed run stores ``--rows`` rows (at least one batch) as
consecutive flushes, each in its own transaction, by

* ``write_points``: ``optimlab.service.db.metrics.write_points`` alone
  (PostgreSQL: binary COPY; SQLite: one executemany);
* ``worker sink``: ``SqlMetricSink.write``, the worker's whole flush (lock the
  job row, write the points, save the progress summary);
* ``naive``: the peer, one ``INSERT`` statement per row through SQLAlchemy Core,
  all rows of the batch in one transaction.

Reads: one series of ``--read-points`` points (the job holds three such series)
through ``metrics.read_series``, against a raw ``SELECT step, value ... ORDER BY
step`` on the DB-API cursor with ``fetchall()``.

Both backends are created through the migrations: SQLite in a temporary folder,
PostgreSQL as a throwaway database (``optimlab_bench_<hex>``) dropped at the end.
Medians of ``--repeats`` runs (``--naive-repeats`` for the slow naive peer) with the
min-max spread; ratios are against the peer measured in the same run, and each
repeat runs the methods in a rotated order. The metrics table is emptied (and
SQLite's WAL checkpointed) before every timed write, so each run starts alike.
The process imports torch (through the worker's modules), as the worker does: a
full garbage collection then takes ~0.2 s, and when one falls inside a timed run
it shows in the spread; ``--freeze-gc`` takes the import-time objects out of it.

    .venv/bin/python bench/metric_store.py [--rows N] [--read-points N] [--repeats R]
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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import sqlalchemy
from sqlalchemy import Engine, func, insert, select, text
from support import load_line, positive, postgres_url

from optimlab import migrations
from optimlab.service.db import jobs, metrics
from optimlab.service.db.connection import make_engine
from optimlab.service.db.models import Metric, utcnow
from optimlab.worker.engine import MetricPoint, TrainingSummary
from optimlab.worker.execution import SqlMetricSink

SERIES = ("loss", "lr", "param.x")
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def make_points(first_step: int, rows: int, rng: random.Random) -> list[MetricPoint]:
    """``rows`` points in the engine's order: every series of a step, step after step."""
    points: list[MetricPoint] = []
    step = first_step
    while len(points) < rows:
        points.extend((step, name, rng.uniform(-10.0, 10.0)) for name in SERIES)
        step += 1
    return points[:rows]


def in_batches(total: int, batch: int, rng: random.Random) -> list[list[MetricPoint]]:
    """``total`` rows of consecutive steps, as flushes of ``batch`` rows each."""
    points = make_points(0, total, rng)
    return [points[first:first + batch] for first in range(0, total, batch)]


# --------------------------------------------------------------------------- a store

@dataclass
class Store:
    backend: str
    engine: Engine
    claim: jobs.Claim

    def empty(self) -> None:
        with self.engine.begin() as conn:
            if self.backend == "postgresql":
                conn.execute(text("TRUNCATE metrics"))
            else:
                conn.execute(text("DELETE FROM metrics"))
        if self.backend == "sqlite":  # start every run with an empty write-ahead log
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def count(self, job_id: uuid.UUID) -> int:
        with self.engine.connect() as conn:
            query = select(func.count()).select_from(Metric).where(Metric.job_id == job_id)
            return int(conn.scalar(query) or 0)


def new_job(engine: Engine) -> jobs.Claim:
    """A job claimed as a worker claims it: the fence SqlMetricSink writes under."""
    with engine.begin() as conn:
        job = jobs.insert_job(conn, name="bench", spec={"bench": True}, queue="cpu")
        claim = jobs.claim_job(conn, job.id, worker="bench", stale_before=utcnow(),
                               max_attempts=3)
    assert claim is not None
    return claim


def open_store(backend: str, url: str) -> Store:
    migrations.upgrade(url)
    engine = make_engine(url)
    return Store(backend, engine, new_job(engine))


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="optimlab-bench-") as folder:
        yield f"sqlite:///{Path(folder) / 'bench.db'}"


# --------------------------------------------------------------------------- writers

Writer = Callable[[Store, list[MetricPoint]], None]


def write_points(store: Store, batch: list[MetricPoint]) -> None:
    with store.engine.begin() as conn:
        metrics.write_points(conn, store.claim.job_id, batch)


def worker_sink(store: Store, batch: list[MetricPoint]) -> None:
    summary = TrainingSummary(device="cpu", parameter_count=1,
                              steps_done=batch[-1][0] + 1, final_loss=batch[-1][2])
    if not SqlMetricSink(store.engine, store.claim).write(batch, summary):
        raise RuntimeError("the sink refused the write")


NAIVE_INSERT = insert(Metric)


def naive(store: Store, batch: list[MetricPoint]) -> None:
    job_id = store.claim.job_id
    with store.engine.begin() as conn:
        for step, name, value in batch:
            conn.execute(NAIVE_INSERT,
                         {"job_id": job_id, "name": name, "step": step, "value": value})


WRITERS: dict[str, Writer] = {
    "write_points": write_points,
    "worker sink": worker_sink,
    "naive": naive,
}


def time_writes(store: Store, writer: Writer, batches: list[list[MetricPoint]]) -> float:
    """Rows per second of storing ``batches``, one transaction each, into an empty table."""
    store.empty()
    rows = sum(len(b) for b in batches)
    start = time.perf_counter()
    for batch in batches:
        writer(store, batch)
    elapsed = time.perf_counter() - start
    stored = store.count(store.claim.job_id)
    if stored != rows:
        raise RuntimeError(f"{stored} rows stored, {rows} written")
    return rows / elapsed


# --------------------------------------------------------------------------- readers

def read_ours(store: Store, job_id: uuid.UUID, name: str) -> int:
    with store.engine.connect() as conn:
        (series,) = metrics.read_series(conn, job_id, [name])
    return len(series.steps)


def read_raw(store: Store, job_id: uuid.UUID, name: str) -> int:
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if store.backend == "postgresql":
            cursor.execute("SELECT step, value FROM metrics WHERE job_id = %s AND name = %s "
                           "ORDER BY step", (job_id, name))
        else:  # SQLAlchemy's Uuid is CHAR(32) hex on SQLite
            cursor.execute("SELECT step, value FROM metrics WHERE job_id = ? AND name = ? "
                           "ORDER BY step", (job_id.hex, name))
        rows = cursor.fetchall()
        cursor.close()
    finally:
        raw.close()
    return len(rows)


def time_read(reader: Callable[[Store, uuid.UUID, str], int], store: Store,
              job_id: uuid.UUID, expected: int) -> float:
    start = time.perf_counter()
    got = reader(store, job_id, "loss")
    elapsed = time.perf_counter() - start
    if got != expected:
        raise RuntimeError(f"read {got} points, expected {expected}")
    return got / elapsed


# --------------------------------------------------------------------------- report

def fmt_rate(value: float) -> str:
    return f"{value / 1000:.1f}k" if value < 1e6 else f"{value / 1e6:.2f}M"


def print_row(backend: str, what: str, batch: int | None, rows: int, rates: Sequence[float],
              peer: float | None) -> None:
    median = statistics.median(rates)
    spread = f"{fmt_rate(min(rates))}-{fmt_rate(max(rates))}"
    ratio = "peer" if peer is None else f"{median / peer:.1f}x"
    print(f"{backend:<10} {what:<13} {fmt_count(batch):>6} {fmt_count(rows):>6} "
          f"{fmt_rate(median):>9}/s  {spread:>17}  {ratio:>6}", flush=True)


def fmt_count(count: int | None) -> str:
    if count is None:
        return "-"
    return f"{count // 1000}k" if count % 1000 == 0 else str(count)


def rotated(names: list[str], repeat: int) -> list[str]:
    """Each repeat starts from a different method: none always runs first or after the same."""
    shift = repeat % len(names)
    return names[shift:] + names[:shift]


def bench_backend(backend: str, url: str, args: argparse.Namespace) -> None:
    store = open_store(backend, url)
    rng = random.Random(20261125)
    try:
        for size in args.batch:
            total = max(size, args.rows)
            batches = in_batches(total, size, rng)
            for writer in WRITERS.values():  # warm: connections, compiled statements
                time_writes(store, writer, [batches[0][:300]])
            rates: dict[str, list[float]] = {name: [] for name in WRITERS}
            gc.collect()  # once: a full collection takes ~0.2 s with torch loaded
            for repeat in range(max(args.repeats, args.naive_repeats)):
                for name in rotated(list(WRITERS), repeat):
                    wanted = args.naive_repeats if name == "naive" else args.repeats
                    if repeat < wanted:
                        rates[name].append(time_writes(store, WRITERS[name], batches))
            peer = statistics.median(rates["naive"])
            for name, values in rates.items():
                print_row(backend, name, size, total, values,
                          None if name == "naive" else peer)

        store.empty()
        reading = new_job(store.engine)
        points = args.read_points
        store.claim = reading
        for batch in in_batches(points * len(SERIES), 60_000, rng):
            write_points(store, batch)
        readers = {"read_series": read_ours, "raw cursor": read_raw}
        read_rates: dict[str, list[float]] = {name: [] for name in readers}
        for reader in readers.values():  # warm
            time_read(reader, store, reading.job_id, points)
        gc.collect()
        for repeat in range(args.repeats):
            for name in rotated(list(readers), repeat):
                read_rates[name].append(time_read(readers[name], store, reading.job_id, points))
        peer = statistics.median(read_rates["raw cursor"])
        print_row(backend, "read_series", None, points, read_rates["read_series"], peer)
        print_row(backend, "raw cursor", None, points, read_rates["raw cursor"], None)
    finally:
        store.engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=positive, default=5000,
                        help="rows per timed run (at least one batch; default 5000)")
    parser.add_argument("--batch", type=positive, nargs="+", default=[1000, 20_000],
                        help="rows per flush (default: 1000 20000)")
    parser.add_argument("--read-points", type=positive, default=100_000,
                        help="points of the series read back (default 100000)")
    parser.add_argument("--repeats", type=positive, default=5, help="runs per figure (default 5)")
    parser.add_argument("--naive-repeats", type=positive, default=3,
                        help="runs of the naive peer, 10-25x slower (default 3)")
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
          f"{sqlite3.sqlite_version}; median of {args.repeats} runs (naive peer: "
          f"{args.naive_repeats}), min-max in brackets"
          + ("; gc.freeze() after start-up" if args.freeze_gc else ""))
    print("writes: rows/s storing `rows` rows as flushes of `batch` rows, one transaction "
          "each, into an emptied table; ratio = median / naive median of this run")
    print("reads: points/s of one series; ratio = median / raw-cursor median of this run")
    print(f"{'backend':<10} {'method':<13} {'batch':>6} {'rows':>6} {'median':>11}  "
          f"{'(min-max)':>17}  {'ratio':>6}")
    print(load_line())
    if args.backend in ("sqlite", "all"):
        with sqlite_url() as url:
            bench_backend("sqlite", url, args)
    if args.backend in ("postgresql", "all"):
        try:
            with psycopg.connect(args.postgres, connect_timeout=5):
                pass
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            print(f"postgresql: skipped, no server at {args.postgres} ({reason})")
            return
        with postgres_url(args.postgres) as url:
            bench_backend("postgresql", url, args)
    print(load_line())


if __name__ == "__main__":
    main()
