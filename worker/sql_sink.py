"""The worker's one sink, for a run of one job or many (the engine's sink contract).

Every flush stores each job's batch in one transaction, each fenced by its own attempt,
with a ``wall_time`` point at the batch's last step and the log lines captured meanwhile.
A job's first batch first deletes what earlier attempts stored after its ``replace_after``
step (all of it: -1), in the same transaction: a reader sees a dead attempt's points until
the same values replace them, never a gap. ``notes`` join each job's summary.

``threaded`` (a fused run): the writes run on a thread of their own, so the next steps
train while a batch is stored (the database driver releases the GIL), and ``write``
answers with what the last stored batch said of each job: a cancel is seen one flush
later. Otherwise (a job alone) each write is stored before it returns.

While the database is away, batches wait in an outbox (db_retry.Outbox) and training goes
on; past ``Settings.unstored_points_limit`` points a write blocks until they are stored.
Each batch is stored exactly once. ``close`` stores what waits and raises what a write
raised.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine

from optimlab.service.db import job_logs, jobs, metrics
from optimlab.service.settings import Settings
from optimlab.worker.db_retry import Backoff, Outbox
from optimlab.worker.engine.sink import JobUpdate, SeriesColumns, point_count
from optimlab.worker.run_log import Pending, RunLog, rows_for

# Seconds since the run started, one point per stored batch at its last step: written by the
# worker's sink (not by the engine, whose histories stay the same from run to run).
WALL_TIME = "wall_time"

# A JobUpdate as it is stored: the summary as a dict of the moment it was written.
Stored = tuple[int, SeriesColumns, dict[str, Any]]
_Batch = tuple[list[Stored], list[Pending]]


class SqlJobsSink:
    def __init__(self, db: Engine, claims: list[jobs.Claim],
                 run_log: RunLog | None = None, *, settings: Settings | None = None,
                 replace_after: int = -1, notes: Sequence[dict[str, Any]] | None = None,
                 max_seconds: float | None = None, threaded: bool = True) -> None:
        settings = settings or Settings()
        self.outbox: Outbox[_Batch, None] = Outbox(
            self._store_retried, size=_points, limit=settings.unstored_points_limit,
            backoff=backoff_of(settings), what=_what(claims))
        self.db = db
        self.claims = claims
        self.run_log = run_log
        self.replace_after: list[int | None] = [replace_after] * len(claims)
        self.notes = [dict(n) for n in notes] if notes is not None else [{} for _ in claims]
        self.wall_steps = [replace_after] * len(claims)  # each job's last wall_time step
        self.last_taken: list[dict[str, Any] | None] = [None] * len(claims)
        self.superseded: set[int] = set()
        self.going_on = [True] * len(claims)
        self.max_seconds = max_seconds  # each job's wall-time limit, checked at each write
        self.timed_out: dict[int, str] = {}  # why a job was stopped for its wall time
        self.failure: BaseException | None = None
        self.batches: queue.Queue[list[Stored] | None] | None = None
        self.thread: threading.Thread | None = None
        if threaded:
            self.batches = queue.Queue(maxsize=2)
            self.thread = threading.Thread(target=self._run, name="metrics-writer",
                                           daemon=True)
            self.thread.start()

    def begin(self, index: int, *, after: int, note: dict[str, Any]) -> None:
        """Job ``index`` goes on after step ``after`` (-1: from the start): its first write
        replaces every point stored past it (by a dead attempt); ``note`` joins its summary."""
        self.replace_after[index] = self.wall_steps[index] = after
        self.notes[index] = dict(note)

    def write(self, updates: Sequence[JobUpdate]) -> list[bool]:
        self._raise_failure()
        # The summaries are taken now: the run keeps changing them while the batch waits.
        stored = [(i, points, {**summary.as_dict(), **self.notes[i]})
                  for i, points, summary in updates]
        for i, _, taken in stored:
            self.last_taken[i] = taken
        if self.batches is not None:
            self.batches.put(stored)
        else:
            self._put(stored)
        for index, _, summary in updates:
            if index not in self.timed_out and (
                    why := over_wall_time(self.max_seconds, summary.wall_seconds,
                                          summary.steps_done)) is not None:
                self.timed_out[index] = why
        # a job past its wall time stops as for a cancel; it fails, its points kept
        return [self.going_on[index] and index not in self.timed_out
                for index, _, _ in updates]

    def last_summary(self, index: int) -> dict[str, Any] | None:
        """Job ``index``'s summary as last written, storable (for a run that fails)."""
        taken = self.last_taken[index]
        return None if taken is None else finite_json(taken)

    def drain(self) -> None:
        """Wait until every batch written so far is stored or waits in the outbox; raise
        what a write raised."""
        if self.batches is not None:
            self.batches.join()
        self._raise_failure()

    def close(self) -> None:
        """Store what waits for the database (waiting for it); raise what a write raised."""
        if self.thread is not None:
            if self.thread.is_alive():
                assert self.batches is not None
                self.batches.put(None)
                self.thread.join()
        else:  # only the writer thread records a failure
            self.outbox.flush()
        self._raise_failure()

    def replace_now(self) -> None:
        """Replace old points now for the jobs no write did (a run that failed first)."""
        for index, claim in enumerate(self.claims):
            after = self.replace_after[index]
            if after is None or index in self.superseded:
                continue
            with self.db.begin() as conn:
                if jobs.lock_for_write(conn, claim) is None:
                    self.superseded.add(index)
                    continue
                metrics.delete_after(conn, claim.job_id, after)
            self.replace_after[index] = None

    def _raise_failure(self) -> None:
        if self.failure is not None:
            raise RuntimeError(f"storing metrics failed: {self.failure}") from self.failure

    def _run(self) -> None:
        assert self.batches is not None
        while (updates := self.batches.get()) is not None:
            try:
                if self.failure is None:  # else drain: the run is about to see the failure
                    self._put(updates)
            except BaseException as exc:  # handed to the training thread
                self.failure = exc
            finally:
                self.batches.task_done()
        try:
            self.outbox.flush()  # the run ended: what waits for the database, stored
        except BaseException as exc:
            self.failure = exc
        finally:
            self.batches.task_done()

    def _put(self, updates: list[Stored]) -> None:
        for index, points, summary in updates:
            self._add_wall_time(index, points, summary)
        lines = self.run_log.take() if self.run_log is not None else []
        self.outbox.put((updates, lines))

    def _store_retried(self, batch: _Batch, retried: bool) -> None:
        updates, lines = batch
        with self.db.begin() as conn:
            statuses = store_updates(conn, self.claims, updates, lines,
                                     replace_after=self.replace_after, verify=retried)
        for (index, _, _), status in zip(updates, statuses, strict=True):
            if status is None:
                self.superseded.add(index)
            else:
                self.replace_after[index] = None
            self.going_on[index] = status == jobs.RUNNING

    def _add_wall_time(self, index: int, points: SeriesColumns, summary: dict[str, Any]) -> None:
        last = max((int(steps[-1]) for steps, _ in points.values() if len(steps)), default=-1)
        if last > self.wall_steps[index]:
            points[WALL_TIME] = ([last], [summary["wall_seconds"]])
            self.wall_steps[index] = last


def store_updates(conn: Connection, claims: Sequence[jobs.Claim], updates: Sequence[Stored],
                  lines: Sequence[Pending] = (), *,
                  replace_after: Sequence[int | None] | None = None,
                  verify: bool = False) -> list[str | None]:
    """Store each update's points, progress and the log lines, every job fenced by its
    attempt (``claims[index]``); each job's status, or None (nothing stored for it) where
    its run no longer holds it.

    ``replace_after[index]``: first delete the job's points past this step (a run's first
    write replaces what a dead attempt stored after the checkpoint it resumes from).
    ``verify``: an earlier try may have committed without our hearing of it; the batch is
    stored unless it already is (checked under the jobs' row locks, which that commit held;
    after the replacement, so a dead attempt's points never pass for ours)."""
    held_claims = [claims[index] for index, _, _ in updates]
    statuses = jobs.lock_many_for_write(conn, held_claims)
    held = [(claim, points, summary) for claim, (_, points, summary), status
            in zip(held_claims, updates, statuses, strict=True) if status is not None]
    for (index, _, _), status in zip(updates, statuses, strict=True):
        after = None if replace_after is None else replace_after[index]
        if status is not None and after is not None:
            metrics.delete_after(conn, claims[index].job_id, after)
    if verify and _stored_before(conn, held):
        held = []
    metrics.write_many(conn, [(claim.job_id, points) for claim, points, _ in held])
    jobs.save_many_progress(conn, [(claim, finite_json(summary)) for claim, _, summary in held])
    job_logs.write_lines(conn, rows_for(lines, [(claim.job_id, claim.attempt)
                                                for claim, _, _ in held]))
    return statuses


def _stored_before(conn: Connection, held: list[tuple[jobs.Claim, SeriesColumns, Any]]) -> bool:
    """Whether a batch's one transaction went through: one of its chunks tells."""
    for claim, points, _ in held:
        for name, (steps, _) in points.items():
            if len(steps):
                return metrics.has_chunk(conn, claim.job_id, name, int(steps[0]))
    return False


def _points(batch: _Batch) -> int:
    return sum(point_count(points) for _, points, _ in batch[0])


def _what(claims: list[jobs.Claim]) -> str:
    if len(claims) == 1:
        return f"job {claims[0].job_id}: metrics"
    return f"fused run of {len(claims)} jobs: metrics"


def over_wall_time(limit: float | None, seconds: float, steps_done: int) -> str | None:
    """Why the run must stop for the service's wall-time limit (OPTIMLAB_MAX_JOB_SECONDS),
    or None."""
    if limit is None or seconds <= limit:
        return None
    return (f"stopped after {seconds:.1f} s at step {steps_done}: over the wall-time limit "
            f"of {limit:g} s per run (OPTIMLAB_MAX_JOB_SECONDS); the metrics stored so far "
            "are kept")


def backoff_of(settings: Settings) -> Backoff:
    return Backoff(first=settings.db_retry_first_seconds, cap=settings.db_retry_max_seconds)


def finite_json(value: Any) -> Any:
    """JSON has no NaN or infinity (PostgreSQL refuses them): store null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value
