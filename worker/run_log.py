"""Capture the log lines of a run for its jobs: Python warnings (torch's UserWarnings, say),
WARNING and above from any logger, and the run's own start and end lines.

While a run goes on, a handler on the root logger keeps these lines in memory; the worker's
SQL sinks take what is pending with each metrics write, and the outcome's transaction the
rest (service/db/job_logs.py stores them). A line logged with ``extra=job_line(job_id)``
belongs to that job alone (a fused run's start and end lines); every other line to every
job of the run. A run keeps at most ``max_lines`` lines (then one saying how many were
dropped) of at most ``max_chars`` characters each, so a chatty job cannot flood the
database; the work per line is a few microseconds, and a run that logs nothing pays nothing.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
import warnings
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from optimlab.service.db.job_logs import LogLine

MAX_LINES = 500
MAX_CHARS = 4000
_JOB = "optimlab_job_id"  # the LogRecord attribute that ties a line to one job

# A line and the job it belongs to (None: every job of the run).
Pending = tuple[uuid.UUID | None, LogLine]


def job_line(job_id: uuid.UUID) -> dict[str, Any]:
    """``extra`` for a logging call whose line belongs to this job's run, at any level."""
    return {_JOB: job_id}


class RunLog(logging.Handler):
    """The lines captured so far that no write has taken yet."""

    def __init__(self, *, max_lines: int = MAX_LINES, max_chars: int = MAX_CHARS) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))  # the message and any traceback
        self.max_lines = max_lines
        self.max_chars = max_chars
        self.kept = 0
        self.dropped = 0
        self.pending: list[Pending] = []

    def emit(self, record: logging.LogRecord) -> None:
        # Called under the handler's lock, from whichever thread logs.
        job: uuid.UUID | None = getattr(record, _JOB, None)
        if job is None and record.levelno < logging.WARNING:
            return
        if job is None and self.kept >= self.max_lines:  # a run's own lines always count
            self.dropped += 1
            return
        try:
            text = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.kept += job is None
        self.pending.append((job, LogLine(
            at=datetime.fromtimestamp(record.created, UTC).replace(tzinfo=None),
            level=record.levelno, logger=record.name[:200], message=self._cut(text))))

    def note(self, logger: logging.Logger, job_id: uuid.UUID, msg: str, *args: object) -> None:
        """Log the run's own line (its start or end) at INFO, and keep it with the job even
        where INFO is not shown."""
        if logger.isEnabledFor(logging.INFO):
            logger.info(msg, *args, extra=job_line(job_id))  # reaches this handler too
        else:
            self.handle(logger.makeRecord(logger.name, logging.INFO, "(run)", 0, msg, args, None,
                                          extra=job_line(job_id)))

    def _cut(self, text: str) -> str:
        if len(text) <= self.max_chars:
            return text
        return f"{text[:self.max_chars]}… ({len(text) - self.max_chars} more characters)"

    def take(self, *, last: bool = False) -> list[Pending]:
        """The pending lines, oldest first; with ``last``, then a line for those dropped."""
        with self._locked():
            taken, self.pending = self.pending, []
            if last and self.dropped:
                taken.append((None, LogLine(
                    at=datetime.now(UTC).replace(tzinfo=None), level=logging.WARNING,
                    logger=__name__, message=f"{self.dropped} more lines were dropped (a run "
                                             f"keeps at most {self.max_lines})")))
                self.dropped = 0
        return taken

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()


def rows_for(pending: Sequence[Pending], runs: Sequence[tuple[uuid.UUID, int]]
             ) -> list[tuple[uuid.UUID, int, LogLine]]:
    """(job id, attempt, line) rows: each line for its job, or for every run given."""
    return [(job_id, attempt, line) for owner, line in pending for job_id, attempt in runs
            if owner is None or owner == job_id]


@contextlib.contextmanager
def capturing(*, max_lines: int = MAX_LINES, max_chars: int = MAX_CHARS) -> Iterator[RunLog]:
    """Capture the lines of the run inside the block.

    Python shows a warning once per place in the code and process (its registry): entering
    ``catch_warnings`` resets that, so each run shows, and keeps, each of its warnings once.
    The filters themselves stay as they are.
    """
    handler = RunLog(max_lines=max_lines, max_chars=max_chars)
    root = logging.getLogger()
    with warnings.catch_warnings():
        warnings.showwarning = _log_warning
        root.addHandler(handler)
        try:
            yield handler
        finally:
            root.removeHandler(handler)


_warnings_log = logging.getLogger("py.warnings")


def _log_warning(message: Warning | str, category: type[Warning], filename: str,
                 lineno: int, file: TextIO | None = None, line: str | None = None) -> None:
    # What logging.captureWarnings does, for this block only.
    text = warnings.formatwarning(message, category, filename, lineno, line)
    _warnings_log.warning("%s", text.rstrip())
