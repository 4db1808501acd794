"""Pay torch's one-time costs (lazy imports such as torch._dynamo, ~1.5 s) before the first job."""

from __future__ import annotations

from optimlab.worker.engine.loop import run_training
from optimlab.worker.engine.sink import ListSink
from optimlab.worker.engine.validation import validate_spec
from optimlab.worker.spec import JobSpec

_SPEC = {
    "model": {"kind": "expression", "expression": "sum((w*u - 1)**2)",
              "parameters": {"w": [1.0]}},
    "data": {"kind": "inline", "inputs": {"u": [1.0, 2.0]}},
    "loss": "none",
    "optimizer": {"name": "Adam", "lr": 0.1},
    "schedule": {"name": "StepLR", "step_size": 1},
    "batch_size": 1,
    "steps": 2,
    "device": "cpu",
}


def warm_up() -> None:
    spec = JobSpec.model_validate(_SPEC)
    validate_spec(spec)
    run_training(spec, ListSink())
