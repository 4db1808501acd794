"""The pure training engine: job specs in, metrics out through a :class:`MetricSink`.

``train`` runs one job or many through the kernel it chooses (kernels.py): the loop of
one job (loop.py's ``run_training``) or the fused loop of many (fused/loop.py).

Nothing here imports the database or Celery, so the engine can be tested and
benchmarked on its own.
"""

from optimlab.worker.engine.kernels import train
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
    "train",
    "validate_spec",
]
