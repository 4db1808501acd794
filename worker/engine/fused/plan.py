"""Which jobs can run fused, and together with which others.

Jobs fuse when they share everything that shapes the computation (model, data, loss,
batching, length, evaluation, device, optimizer class) and differ only in what becomes a
per-job number: optimizer options, the schedule, the seed, and per-job bookkeeping (name,
tags, stopping rules, summary thresholds). ``fusion_key`` gives the shared part, or the
reason a job cannot fuse at all.
"""

from __future__ import annotations

from typing import Any

import orjson
import torch

from optimlab.worker.engine.fused.optimizers import NotFusable, fused_optimizer
from optimlab.worker.engine.fused.schedule import cycled_key
from optimlab.worker.engine.registry import needs_closure, optimizer_classes
from optimlab.worker.spec import CNNModel, JobSpec
from optimlab.worker.spec_errors import SpecError

# Per job in a fused run: everything else must be equal.
PER_JOB = ("optimizer", "schedule", "seed", "name", "tags", "stop", "diverge_factor",
           "summary")


def fusion_key(spec: JobSpec) -> tuple[bytes | None, str | None]:
    """(key, None) for a job that can fuse with the others of its key, else (None, why)."""
    reason = why_not_fusable(spec)
    if reason is not None:
        return None, reason
    shared: dict[str, Any] = {k: v for k, v in spec.model_dump(mode="json").items()
                              if k not in PER_JOB}
    shared["optimizer"] = spec.optimizer.name
    shared["cycles"] = cycled_key(spec)  # the fused step takes all momenta or none
    return orjson.dumps(shared, option=orjson.OPT_SORT_KEYS), None


def why_not_fusable(spec: JobSpec) -> str | None:
    if spec.init_from is not None:
        return "init_from starts the model from a checkpoint, in a job alone"
    if isinstance(spec.model, CNNModel):
        return "cnn models are not fused (convolutions under vmap)"
    if getattr(spec.model, "dropout", 0.0):
        return "dropout draws from the global random stream in a job alone"
    if spec.parameter_groups:
        return "parameter_groups are not fused"
    if spec.clip_grad_norm is not None:
        return "clip_grad_norm is not fused"
    if spec.schedule is not None and spec.schedule.name == "ReduceLROnPlateau":
        return "ReduceLROnPlateau follows the loss, so it cannot be computed ahead"
    cls = optimizer_classes().get(spec.optimizer.name)
    if cls is None:
        return f"unknown optimizer {spec.optimizer.name!r}"
    if needs_closure(cls):
        return f"{spec.optimizer.name} needs a closure (it re-evaluates the loss)"
    try:
        fused_optimizer(spec.optimizer.name, [spec.optimizer.kwargs],
                        [torch.zeros(1, 1, requires_grad=True)])
    except NotFusable as exc:
        return exc.reason
    except (SpecError, ValueError, TypeError) as exc:
        return f"{spec.optimizer.name}: {exc}"
    return None
