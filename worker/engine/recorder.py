"""Buffer a run's metric points and hand them to the sink every ``flush_seconds``."""

from __future__ import annotations

import math
from collections.abc import Callable

from optimlab.worker.engine.sink import MetricPoint, MetricSink, TrainingSummary

FLUSH_POINTS = 20_000


class Recorder:
    def __init__(self, sink: MetricSink, summary: TrainingSummary, *, flush_seconds: float,
                 clock: Callable[[], float]) -> None:
        self.sink = sink
        self.summary = summary
        self.flush_seconds = flush_seconds
        self.clock = clock
        self.started = clock()
        self.next_flush = self.started + flush_seconds
        self.points: list[MetricPoint] = []

    def loss(self, step: int, value: float) -> None:
        self.points.append((step, "loss", value))
        summary = self.summary
        summary.steps_done = step + 1
        summary.final_loss = value
        if step == 0:
            summary.initial_loss = value
        if math.isfinite(value) and (summary.best_loss is None or value < summary.best_loss):
            summary.best_loss, summary.best_step = value, step

    def add(self, step: int, name: str, value: float) -> None:
        self.points.append((step, name, value))

    def evaluation(self, step: int, values: dict[str, float]) -> None:
        self.points.extend((step, name, value) for name, value in values.items())
        summary = self.summary
        summary.evaluation = dict(values)
        val_loss = values.get("val_loss")
        if val_loss is not None and math.isfinite(val_loss) and (
                summary.best_val_loss is None or val_loss < summary.best_val_loss):
            summary.best_val_loss, summary.best_val_step = val_loss, step

    def elapsed(self) -> float:
        return self.clock() - self.started

    def due(self) -> bool:
        return len(self.points) >= FLUSH_POINTS or self.clock() >= self.next_flush

    def flush(self) -> bool:
        """Hand the buffer to the sink; False when the sink asks the run to stop."""
        now = self.clock()
        self.summary.wall_seconds = now - self.started
        if self.summary.wall_seconds > 0:
            self.summary.steps_per_second = self.summary.steps_done / self.summary.wall_seconds
        points, self.points = self.points, []
        self.next_flush = now + self.flush_seconds
        return self.sink.write(points, self.summary)
