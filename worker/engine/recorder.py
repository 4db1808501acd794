"""Buffer a run's metric points and hand them to the sink every ``flush_seconds``; keep the
summary's loss statistics (best, thresholds crossed, area under log10 of the loss) as it goes."""

from __future__ import annotations

import functools
import itertools
import math
import operator
from collections.abc import Callable
from typing import Any

from optimlab.worker.engine import metric_names as names
from optimlab.worker.engine.sink import MetricPoint, MetricSink, TrainingSummary, point_columns
from optimlab.worker.outcomes import Outcome

FLUSH_POINTS = 20_000


# The smallest positive float32: log10 of a loss that reached exactly 0 counts as this.
TINY = 1.1754943508222875e-38
DEFAULT_FACTORS = (10, 100, 1000)


class Recorder:
    def __init__(self, sink: MetricSink, summary: TrainingSummary, *, flush_seconds: float,
                 clock: Callable[[], float], thresholds: list[float] | None = None,
                 index: int = 0) -> None:
        self.sink = sink
        self.index = index  # the job's in the run's specs: its updates say so
        self.summary = summary
        self.thresholds = thresholds
        self.pending: list[tuple[float, int]] = []  # (threshold, its index in steps_to)
        self.pending_max = -math.inf  # the largest threshold not crossed yet
        self.last_log: float | None = None
        self.flush_seconds = flush_seconds
        self.clock = clock
        self.started = clock()
        self.next_flush = self.started + flush_seconds
        self.points: list[MetricPoint] = []

    def loss(self, step: int, value: float) -> None:
        self.points.append((step, names.LOSS, value))
        self._summarise(step, value)

    def losses(self, first_step: int, values: list[float]) -> None:
        """What ``loss`` does to the summary for steps ``first_step``, ``first_step + 1``, ...,
        without the points (a fused run keeps those itself): the same floats, computed per
        batch with C-level loops (min, map, reduce) instead of per step."""
        if first_step == 0 and values:
            self._summarise(0, values[0])  # sets the initial loss and the thresholds
            first_step, values = 1, values[1:]
        finite = len(values)  # how many come before the first non-finite loss
        if not all(map(math.isfinite, values)):
            finite = next(k for k, v in enumerate(values) if not math.isfinite(v))
        if finite:
            self._finite_losses(first_step, values[:finite] if finite < len(values) else values)
        # from a non-finite loss on (one ends a run: rare), step by step
        for step, value in enumerate(values[finite:], first_step + finite):
            self._summarise(step, value)

    def _finite_losses(self, first_step: int, values: list[float]) -> None:
        """``losses`` for finite values past step 0 (no NaN to upset ``min``)."""
        summary = self.summary
        summary.steps_done = first_step + len(values)
        summary.final_loss = values[-1]
        lowest = min(values)  # the first of equal minima, as ``<`` step by step keeps it
        if summary.best_loss is None or lowest < summary.best_loss:
            summary.best_loss, summary.best_step = lowest, first_step + values.index(lowest)
        start = 0
        while self.pending and lowest <= self.pending_max:
            bound = self.pending_max  # the next crossing: the first value at most this
            k = next(k for k in range(start, len(values)) if values[k] <= bound)
            self._crossings(first_step + k, values[k])
            start = k + 1
            lowest = min(values[start:], default=math.inf)
        logs = list(map(math.log10, map(max, values, itertools.repeat(TINY))))
        if summary.loss_area_log10 is not None:
            area = summary.loss_area_log10
            if self.last_log is not None and math.isfinite(self.last_log):
                area += (self.last_log + logs[0]) / 2
            # the trapezoids left to right, added one by one as ``_area`` adds them
            halves = map(operator.truediv, map(operator.add, logs, logs[1:]),
                         itertools.repeat(2))
            summary.loss_area_log10 = functools.reduce(operator.add, halves, area)
        self.last_log = logs[-1]

    def _summarise(self, step: int, value: float) -> None:
        summary = self.summary
        summary.steps_done = step + 1
        summary.final_loss = value
        if step == 0:
            summary.initial_loss = value
            self._set_thresholds(value)
        if math.isfinite(value) and (summary.best_loss is None or value < summary.best_loss):
            summary.best_loss, summary.best_step = value, step
        self._crossings(step, value)
        self._area(step, value)

    def _set_thresholds(self, initial: float) -> None:
        summary = self.summary
        if self.thresholds is not None:
            thresholds = list(self.thresholds)
        elif math.isfinite(initial) and initial > 0:
            thresholds = [initial / factor for factor in DEFAULT_FACTORS]
        else:
            thresholds = []
        summary.steps_to = [{"threshold": t, "step": None} for t in thresholds]
        self.pending = [(t, i) for i, t in enumerate(thresholds)]
        self.pending_max = max(thresholds, default=-math.inf)

    def _crossings(self, step: int, value: float) -> None:
        if not self.pending or not value <= self.pending_max:
            return
        crossed = [(t, i) for t, i in self.pending if value <= t]
        for _, i in crossed:
            self.summary.steps_to[i]["step"] = step
            if self.thresholds is None:
                setattr(self.summary, f"steps_to_{DEFAULT_FACTORS[i]}x", step)
        self.pending = [p for p in self.pending if p not in crossed]
        self.pending_max = max((t for t, _ in self.pending), default=-math.inf)

    def _area(self, step: int, value: float) -> None:
        if not math.isfinite(value):
            self.summary.loss_area_log10 = None
            self.last_log = math.nan
            return
        current = math.log10(max(value, TINY))
        if step == 0:
            self.summary.loss_area_log10 = 0.0
        elif self.last_log is not None and math.isfinite(self.last_log) and \
                self.summary.loss_area_log10 is not None:
            self.summary.loss_area_log10 += (self.last_log + current) / 2
        self.last_log = current

    def add(self, step: int, name: str, value: float) -> None:
        self.points.append((step, name, value))

    def evaluation(self, step: int, values: dict[str, float]) -> None:
        self.points.extend((step, name, value) for name, value in values.items())
        summary = self.summary
        summary.evaluation = dict(values)
        val_loss = values.get(names.VAL_LOSS)
        if val_loss is not None and math.isfinite(val_loss) and (
                summary.best_val_loss is None or val_loss < summary.best_val_loss):
            summary.best_val_loss, summary.best_val_step = val_loss, step

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to go on summarising as this one would have: the summary
        so far, the thresholds still to cross, the last log-loss and the time spent. Taken
        right after a flush (no buffered points)."""
        if self.points:
            raise RuntimeError("a recorder's state is taken right after a flush")
        # the outcome as its plain string: a checkpoint holds no class of ours (weights_only)
        summary = {**self.summary.as_dict(), "outcome": str(self.summary.outcome)}
        return {"summary": summary, "thresholds": self.thresholds,
                "pending": [[t, i] for t, i in self.pending], "last_log": self.last_log,
                "elapsed": self.elapsed()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Go on from ``state`` (see ``state_dict``): the clock counts on from its elapsed."""
        for name, value in state["summary"].items():
            setattr(self.summary, name, Outcome(value) if name == "outcome" else value)
        self.thresholds = state["thresholds"]
        self.pending = [(float(t), int(i)) for t, i in state["pending"]]
        self.pending_max = max((t for t, _ in self.pending), default=-math.inf)
        self.last_log = state["last_log"]
        self.started = self.clock() - float(state["elapsed"])
        self.next_flush = self.clock() + self.flush_seconds

    def elapsed(self) -> float:
        return self.clock() - self.started

    def due(self, held: int = 0) -> bool:
        """Whether to flush: enough points (``held``: those the caller keeps for this run
        outside ``points``) or time."""
        return len(self.points) + held >= FLUSH_POINTS or self.clock() >= self.next_flush

    def flush(self) -> bool:
        """Hand the buffer to the sink, by series; False when the sink asks the run to stop."""
        now = self.clock()
        self.summary.wall_seconds = now - self.started
        if self.summary.wall_seconds > 0:
            self.summary.steps_per_second = self.summary.steps_done / self.summary.wall_seconds
        points, self.points = self.points, []
        self.next_flush = now + self.flush_seconds
        return self.sink.write([(self.index, point_columns(points), self.summary)])[0]
