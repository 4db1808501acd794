"""Riding out a database that is away for seconds or minutes: backoff, and an outbox.

A run must not fail because PostgreSQL blinked. Its writes go through an :class:`Outbox`:
a batch the database cannot take now waits, in order, and training goes on; once the
waiting batches hold ``limit`` points, the next write blocks (training pauses, nothing is
dropped) and retries with a capped exponential backoff until the database is back. Each
retried batch is stored exactly once: its store function is told it is a retry, and checks
(under the run's fenced row lock) whether a commit whose acknowledgement was lost already
took it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = logging.getLogger(__name__)

T = TypeVar("T")
B = TypeVar("B")
R = TypeVar("R")


def is_transient(exc: BaseException) -> bool:
    """The database is unreachable (refused, reset, closed, locked): worth trying again.

    A constraint violation or a bad statement is not: retrying would give the same answer.
    """
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


@dataclass(frozen=True)
class Backoff:
    """Waits of ``first``, doubled after each failure, never longer than ``cap`` seconds."""

    first: float = 0.1
    cap: float = 5.0

    def after(self, failures: int) -> float:
        return float(min(self.cap, self.first * 2 ** max(0, failures - 1)))


def retrying(call: Callable[[], T], *, backoff: Backoff, what: str,
             stop: threading.Event | None = None) -> T:
    """``call()`` until it does not fail for a transient reason (other errors are raised at
    once); ``stop`` set gives up, raising the last error."""
    failures = 0
    while True:
        try:
            result = call()
        except Exception as exc:
            if not is_transient(exc) or (stop is not None and stop.is_set()):
                raise
            failures += 1
            _note_failure(what, failures, exc)
            wait = backoff.after(failures)
            if stop is not None:
                stop.wait(wait)
            else:
                time.sleep(wait)
            continue
        if failures:
            log.warning("%s: database back after %d failed tries", what, failures)
        return result


def _note_failure(what: str, failures: int, exc: BaseException) -> None:
    # One warning when an outage starts, then one every tenth try: not one a second.
    if failures == 1 or failures % 10 == 0:
        log.warning("%s: database unreachable (try %d), retrying: %s", what, failures,
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


class Outbox(Generic[B, R]):
    """Batches waiting for the database, stored oldest first, each exactly once.

    ``store(batch, retried)`` writes one batch in its own transaction and returns what the
    database said (a run's job status); ``retried`` is true when an earlier try of this
    batch failed, perhaps after its commit went through. ``size(batch)`` counts its points.
    """

    def __init__(self, store: Callable[[B, bool], R], *, size: Callable[[B], int], limit: int,
                 backoff: Backoff, what: str) -> None:
        self.store = store
        self.size = size
        self.limit = limit
        self.backoff = backoff
        self.what = what
        self.pending: deque[tuple[B, bool]] = deque()  # (batch, tried before)
        self.points = 0  # in the pending batches
        self.failures = 0
        self.next_try = 0.0  # monotonic time of the next try while the database is away

    def put(self, batch: B) -> R | None:
        """Queue ``batch`` and store what is pending; the last stored batch's answer, or
        None when the database is away and the pending batches still fit in ``limit``."""
        self.pending.append((batch, False))
        self.points += self.size(batch)
        return self.flush(block=self.points > self.limit)

    def flush(self, *, block: bool = True) -> R | None:
        """Store the pending batches; ``block`` waits (with backoff) until they all are."""
        answer: R | None = None
        while self.pending:
            if not block and time.monotonic() < self.next_try:
                return answer  # not yet: the backoff says when
            batch, tried = self.pending[0]
            try:
                answer = self.store(batch, tried)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self.pending[0] = (batch, True)
                self.failures += 1
                _note_failure(self.what, self.failures, exc)
                wait = self.backoff.after(self.failures)
                self.next_try = time.monotonic() + wait
                if not block:
                    return answer
                time.sleep(wait)
                continue
            self.pending.popleft()
            self.points -= self.size(batch)
            if self.failures:
                log.warning("%s: database back after %d failed tries", self.what,
                            self.failures)
                self.failures = 0
        return answer
