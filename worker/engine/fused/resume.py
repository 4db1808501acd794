"""A fused run's checkpoint: what it hands over after a flush, and how a new run goes on.

The state is the stacks (parameters, the fused optimizer's state, where each job's rows
are), each job's own bookkeeping (Recorder, StopRules, its ending if it ended), the
global RNG, and the step. Every job is named by its *origin*, its position in the first
run's specs, so that a resumed run may hold any subset of the jobs, in any order, and
checkpoint again in the same terms. Schedules are not stored: a job's track is a function
of its spec (schedule.py computes it ahead, bit for bit the same each time).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from optimlab.worker.engine.checkpoint import Checkpointer, CheckpointPolicy, RunState

FORMAT = "optimlab.fused/1"


@dataclass
class Saved:
    """A checked fused state, and where each of the new run's jobs is in it."""

    state: RunState
    entries: list[dict[str, Any]]  # per new job (its specs' order): its bookkeeping
    active: list[int]  # the new jobs still running, in the state's stack order
    rows: list[int]  # for each of ``active``: its row in the state's stacks

    @property
    def step(self) -> int:
        return int(self.state["step"])


def restore(state: RunState, origins: list[int], *, steps: int) -> Saved:
    """Check ``state`` against the new run (its jobs' ``origins`` and length) and map it.
    The state is copied: the new run changes what it loads (summaries, lists)."""
    if state.get("format") != FORMAT:
        raise ValueError(f"not a fused checkpoint: {state.get('format')!r}")
    if int(state["steps"]) != steps:
        raise ValueError(f"a checkpoint of a {state['steps']}-step run for {steps} steps")
    state = copy.deepcopy(state)
    by_origin = {int(entry["origin"]): entry for entry in state["jobs"]}
    missing = [origin for origin in origins if origin not in by_origin]
    if missing:
        raise ValueError(f"jobs {missing} are not in the checkpoint")
    position = {origin: k for k, origin in enumerate(origins)}
    stacked = [int(origin) for origin in state["active"]]
    active = [position[origin] for origin in stacked if origin in position]
    rows = [row for row, origin in enumerate(stacked) if origin in position]
    return Saved(state, [by_origin[origin] for origin in origins], active, rows)


def rng_state() -> dict[str, Any]:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []
    return {"cpu": torch.get_rng_state(), "cuda": list(cuda)}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Checkpoints:
    """When the run hands its state over: after a flush, once the policy is due."""

    def __init__(self, checkpointer: Checkpointer, clock: Any, *, after: int) -> None:
        self.checkpointer = checkpointer
        self.policy: CheckpointPolicy = checkpointer.policy
        self.clock = clock
        self.last_step = after  # the step of the last checkpoint (-1: the start)
        self.last_time = clock()

    def due(self, step: int) -> bool:
        return self.policy.due(step - self.last_step, self.clock() - self.last_time)

    def save(self, step: int, state: RunState) -> None:
        self.checkpointer.save(step, state)
        self.last_step, self.last_time = step, self.clock()
