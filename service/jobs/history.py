"""Read metric histories through a window: a step range, a point budget, a smoothing weight.

The budget is spent where the series is read (see optimlab.service.db.history); smoothing runs here,
on the points returned, as TensorBoard smooths the points it has sampled. The full export
(no budget) streams in constant memory, smoothing included.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import repeat

from sqlalchemy import Connection, Engine

from optimlab.service.db import history, metrics
from optimlab.service.jobs.callers import Caller
from optimlab.service.jobs.errors import InvalidQuery
from optimlab.service.jobs.queries import metric_names
from optimlab.service.jobs.smoothing import Ema, smooth

MAX_POINTS = 100_000
MIN_POINTS = history.PER_BUCKET

# (name, step, value, smoothed value or None without smoothing)
Row = tuple[str, int, float, float | None]


@dataclass(frozen=True)
class Window:
    from_step: int | None = None
    to_step: int | None = None
    max_points: int | None = None
    smoothing: float | None = None

    @property
    def is_everything(self) -> bool:
        return self == Window()

    def check(self) -> None:
        """The API validates each field; this also refuses a range that ends before it starts."""
        if self.from_step is not None and self.from_step < 0:
            raise InvalidQuery("from_step", "must be at least 0")
        if self.to_step is not None and self.to_step < 0:
            raise InvalidQuery("to_step", "must be at least 0")
        if (self.from_step is not None and self.to_step is not None
                and self.to_step < self.from_step):
            raise InvalidQuery("to_step", f"must be at least from_step ({self.from_step}), "
                                          f"got {self.to_step}")
        if self.max_points is not None and not MIN_POINTS <= self.max_points <= MAX_POINTS:
            raise InvalidQuery("max_points", f"must be from {MIN_POINTS} to {MAX_POINTS}")
        if self.smoothing is not None and not 0.0 <= self.smoothing < 1.0:
            raise InvalidQuery("smoothing", "must be at least 0 and less than 1")


@dataclass
class SeriesHistory:
    history: history.History
    smoothed: list[float] | None


def read_histories(*, db: Engine, caller: Caller, job_id: uuid.UUID,
                   names: list[str] | None, window: Window) -> list[SeriesHistory]:
    """Each series in the order of ``metric_names`` (loss and lr first)."""
    window.check()
    wanted = dict.fromkeys(metric_names(db=db, caller=caller, job_id=job_id,
                                        names=names))
    with db.connect() as conn:
        return [_read(conn, job_id, name, window) for name in wanted]


def _read(conn: Connection, job_id: uuid.UUID, name: str, window: Window) -> SeriesHistory:
    h = history.read_history(conn, job_id, name, lo=window.from_step, hi=window.to_step,
                             max_points=window.max_points)
    return SeriesHistory(h, None if window.smoothing is None else smooth(h.values,
                                                                         window.smoothing))


@dataclass(frozen=True)
class Chunk:
    """Points of one series in step order, as plain lists, and their smoothed values."""

    name: str
    steps: list[int]
    values: list[float]
    smoothed: list[float] | None


def stream_chunks(*, db: Engine, caller: Caller, job_id: uuid.UUID,
                  names: list[str] | None, window: Window) -> Iterator[Chunk]:
    """The points of every series, series by name (as the CSV export has always come), in
    step order, a stored chunk at a time (at most ``max_points`` of one series when
    downsampled).

    Checks the window and the job now, so that a refusal comes before a response starts;
    the chunks are read as the iterator is consumed.
    """
    window.check()
    wanted = sorted(set(metric_names(db=db, caller=caller, job_id=job_id,
                                     names=names)))
    if window.max_points is None:
        return _chunks_all(db, job_id, wanted, window)
    return _chunks_downsampled(db, job_id, wanted, window)


def stream_history(*, db: Engine, caller: Caller, job_id: uuid.UUID,
                   names: list[str] | None, window: Window) -> Iterator[Row]:
    """:func:`stream_chunks` row by row."""
    return _rows(stream_chunks(db=db, caller=caller, job_id=job_id, names=names,
                               window=window))


def _rows(chunks: Iterator[Chunk]) -> Iterator[Row]:
    for chunk in chunks:
        smoothed: Iterable[float | None] = (repeat(None) if chunk.smoothed is None
                                            else chunk.smoothed)
        yield from zip(repeat(chunk.name), chunk.steps, chunk.values, smoothed)


def _chunks_all(db: Engine, job_id: uuid.UUID, names: list[str],
                window: Window) -> Iterator[Chunk]:
    with db.connect() as conn:
        ema: Ema | None = None
        current = None
        for name, steps, values in metrics.iter_series(conn, job_id, names,
                                                       lo=window.from_step, hi=window.to_step):
            points = values.tolist()
            if window.smoothing is None:
                yield Chunk(name, steps.tolist(), points, None)
                continue
            if name != current:  # chunks come by name, then step: a new series starts
                ema, current = Ema(window.smoothing), name
            assert ema is not None
            yield Chunk(name, steps.tolist(), points, [ema(v) for v in points])


def _chunks_downsampled(db: Engine, job_id: uuid.UUID, names: list[str],
                        window: Window) -> Iterator[Chunk]:
    # One series at a time: at most max_points of them in memory.
    with db.connect() as conn:
        for name in names:
            series = _read(conn, job_id, name, window)
            if series.history.steps:
                yield Chunk(name, series.history.steps, series.history.values, series.smoothed)
