"""A run's whole state at the end of a step, and a run put back into it.

What the state holds: the model's and the optimizer's ``state_dict``, the scheduler's
(ReduceLROnPlateau and the composite ones keep theirs in plain data too), every random
stream a step draws from (torch's CPU generator, which dropout uses on the CPU; each CUDA
device's on a GPU run; the data order's generator), where the data stream stands in its
epoch, the stopping rules' and the recorder's state (the summary so far), the step, and
the highest step stored. A fingerprint of the spec (its bookkeeping aside) keeps a state
from being resumed by a run of another computation.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import torch

from optimlab.worker.engine.batches import BatchStream
from optimlab.worker.engine.checkpoint import RunState
from optimlab.worker.engine.recorder import Recorder
from optimlab.worker.engine.stopping import Ending, ending_from_state, ending_state
from optimlab.worker.engine.training import Training
from optimlab.worker.spec import JobSpec

VERSION = 1
# What a spec may change between attempts without changing the computation.
BOOKKEEPING = {"name", "tags", "checkpoint_every", "checkpoint_seconds"}


class ResumeError(ValueError):
    """The state cannot be resumed by this run (another spec, a damaged state)."""


def fingerprint(spec: JobSpec) -> str:
    shape = spec.model_dump(mode="json", exclude=BOOKKEEPING)
    return hashlib.sha256(orjson.dumps(shape, option=orjson.OPT_SORT_KEYS)).hexdigest()


def capture(step: int, spec: JobSpec, training: Training, recorder: Recorder,
            rows: BatchStream, device: torch.device, *,
            ending: Ending | None = None) -> RunState:
    """The run's state after ``step``, taken right after a flush stored every point up to
    it (``ending``: how the run ended there, for its final state). Tensors are the live
    ones: a checkpointer serialises them before the next step."""
    scheduler = training.scheduler
    return {
        "version": VERSION,
        "ending": ending_state(ending),
        "spec": fingerprint(spec),
        "step": step,
        "stored_through": step,
        "model": training.problem.model.state_dict(),
        "optimizer": training.optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "rng": _rng_state(device),
        "batches": rows.state_dict(),
        "stops": training.stops.state_dict(),
        "recorder": recorder.state_dict(),
    }


def restore(state: RunState, spec: JobSpec, training: Training, recorder: Recorder,
            rows: BatchStream, device: torch.device) -> tuple[int, Ending | None]:
    """Put a freshly built run into ``state``; return the step it ended (the run goes on
    with the next) and, for a final state, how the run ended. Raises ResumeError, the run
    left unusable, when it does not fit."""
    if state.get("version") != VERSION or state.get("spec") != fingerprint(spec):
        raise ResumeError("the checkpoint was taken by another version or another spec")
    try:
        training.problem.model.load_state_dict(state["model"])
        training.optimizer.load_state_dict(state["optimizer"])
        if training.scheduler is not None:
            training.scheduler.load_state_dict(state["scheduler"])
        rows.load_state_dict(state["batches"])
        training.stops.load_state_dict(state["stops"])
        recorder.load_state_dict(state["recorder"])
        _set_rng_state(state["rng"], device)
        return int(state["step"]), ending_from_state(state.get("ending"))
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
        raise ResumeError(f"the checkpoint does not fit this run: {exc}") from exc


def _rng_state(device: torch.device) -> dict[str, Any]:
    cuda = torch.cuda.get_rng_state_all() if device.type == "cuda" else []
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda":
        # The worker sees its one GPU as cuda:0; a state of more devices sets those it has.
        for index, cuda in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda, index)
