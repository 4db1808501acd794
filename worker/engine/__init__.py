"""The pure training engine: a job spec in, metrics out through a :class:`MetricSink`.

Nothing here imports the database or Celery, so the engine can be tested and
benchmarked on its own.
"""

from optimlab.worker.engine.loop import run_training
from optimlab.worker.engine.sink import ListSink, MetricPoint, MetricSink, TrainingSummary
from optimlab.worker.engine.validation import validate_spec
from optimlab.worker.spec_errors import SpecError

__all__ = [
    "ListSink",
    "MetricPoint",
    "MetricSink",
    "SpecError",
    "TrainingSummary",
    "run_training",
    "validate_spec",
]
