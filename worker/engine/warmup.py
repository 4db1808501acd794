"""Pay one-time costs (torch._dynamo's lazy import, ~1.5 s; scikit-learn's, ~1 s) before the
first job, so that neither the first POST nor the first run waits for them."""

from __future__ import annotations

from collections.abc import Sequence

from optimlab.worker.engine.loop import run_training
from optimlab.worker.engine.sink import JobUpdate, ListSink
from optimlab.worker.engine.validation import validate_spec
from optimlab.worker.spec import JobSpec

_SPECS = [
    {"model": {"kind": "expression", "expression": "sum((w*u - 1)**2)",
               "parameters": {"w": [1.0]}},
     "data": {"kind": "inline", "inputs": {"u": [1.0, 2.0]}},
     "loss": "none", "optimizer": {"name": "Adam", "lr": 0.1},
     "schedule": {"name": "StepLR", "step_size": 1}, "batch_size": 1, "steps": 2,
     "device": "cpu"},
    {"model": {"kind": "mlp", "hidden": [4]},
     "data": {"kind": "synthetic", "generator": "moons", "samples": 20, "val_fraction": 0.5},
     "optimizer": {"name": "SGD", "lr": 0.1}, "steps": 2, "eval_every": 1, "device": "cpu"},
]


def warm_up() -> None:
    for raw in _SPECS:
        spec = JobSpec.model_validate(raw)
        validate_spec(spec)
        run_training(spec, ListSink())


def warm_up_fused() -> None:
    """The first vmap pays torch.func's initialisation (~1.5 s): a worker pays it here."""
    from optimlab.worker.engine.fused.loop import run_fused  # workers only

    class Drop:
        def write(self, updates: Sequence[JobUpdate]) -> list[bool]:
            return [True] * len(updates)

    spec = JobSpec.model_validate(_SPECS[0])
    run_fused([spec, spec.model_copy(update={"seed": 1})], Drop())
