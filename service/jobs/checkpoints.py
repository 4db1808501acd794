"""A job's checkpoints from the service's side: the model of one to download, and the
checks a spec's checkpoint fields pass at submit (the service's caps, ``init_from``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import torch
from safetensors.torch import save as safetensors_bytes
from sqlalchemy import Engine

from optimlab.service.jobs import queries
from optimlab.service.jobs.callers import Caller
from optimlab.service.jobs.errors import JobNotFound
from optimlab.service.settings import Settings
from optimlab.worker.checkpoints import CheckpointStore
from optimlab.worker.engine import SpecError
from optimlab.worker.spec import JobSpec


class CheckpointNotFound(LookupError):
    pass


@dataclass(frozen=True)
class ModelFile:
    job_id: uuid.UUID
    step: int
    content: bytes  # safetensors

    @property
    def filename(self) -> str:
        return f"{self.job_id}-step-{self.step}.safetensors"


def model_file(*, db: Engine, settings: Settings, caller: Caller, job_id: uuid.UUID,
               step: int | None) -> ModelFile:
    """The model ``state_dict`` of the job's latest checkpoint (or the one of ``step``)."""
    queries.get_job(db=db, caller=caller, job_id=job_id)  # the owner's only
    store = CheckpointStore(settings.checkpoints)
    steps = store.steps(str(job_id))
    chosen = steps[-1] if step is None and steps else step
    state = store.load(str(job_id), chosen) if chosen is not None and chosen in steps else None
    if state is None or chosen is None or not isinstance(state.get("model"), dict):
        raise CheckpointNotFound(_missing(job_id, step, steps))
    # Tensors of their own, contiguous: safetensors stores no shared or strided storage.
    tensors = {name: tensor.detach().to("cpu").contiguous().clone()
               for name, tensor in state["model"].items() if isinstance(tensor, torch.Tensor)}
    return ModelFile(job_id=job_id, step=chosen, content=safetensors_bytes(
        tensors, metadata={"job": str(job_id), "step": str(chosen)}))


def _missing(job_id: uuid.UUID, step: int | None, steps: list[int]) -> str:
    if step is None or not steps:
        return f"job {job_id} has no checkpoint yet"
    return f"job {job_id} has no checkpoint at step {step}; it has: {_listed(steps)}"


def _listed(steps: list[int]) -> str:
    return ", ".join(map(str, steps)) or "none"


def check_spec(spec: JobSpec, *, db: Engine, settings: Settings, caller: Caller) -> None:
    """Refuse checkpointing more often than the service allows, and an ``init_from`` that
    names no stored checkpoint (SpecError: a 422 naming the field)."""
    seconds, every = spec.checkpoint_seconds, spec.checkpoint_every
    if seconds is not None and seconds < settings.checkpoint_min_seconds:
        raise SpecError(("checkpoint_seconds",), f"at least {settings.checkpoint_min_seconds} "
                                                 f"seconds between checkpoints on this service "
                                                 f"(got {seconds})")
    if every is not None and every < settings.checkpoint_min_steps:
        raise SpecError(("checkpoint_every",), f"at least {settings.checkpoint_min_steps} "
                                               f"steps between checkpoints on this service "
                                               f"(got {every})")
    if spec.init_from is not None:
        _check_init_from(spec, db=db, settings=settings, caller=caller)


def _check_init_from(spec: JobSpec, *, db: Engine, settings: Settings,
                     caller: Caller) -> None:
    assert spec.init_from is not None
    source, step = spec.init_from.job, spec.init_from.step
    try:
        queries.get_job(db=db, caller=caller, job_id=source)  # another's: no job
    except JobNotFound:
        raise SpecError(("init_from", "job"), f"no job {source}") from None
    steps = CheckpointStore(settings.checkpoints).steps(str(source))
    if step not in steps:
        raise SpecError(("init_from", "step"), f"job {source} has no checkpoint at step "
                                               f"{step}; it has: {_listed(steps)}")
