"""A checkpointer for engine tests: every state kept in memory as the bytes a store holds
(``torch.save``), and read back as the worker reads it (``weights_only``)."""

from __future__ import annotations

import io

import torch

from optimlab.worker.engine.checkpoint import CheckpointPolicy, RunState


class MemoryCheckpointer:
    def __init__(self, every: int = 1) -> None:
        self.policy = CheckpointPolicy(every_steps=every)
        self.saved: dict[int, bytes] = {}

    def save(self, step: int, state: RunState) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        self.saved[step] = buffer.getvalue()

    def load(self, step: int) -> RunState:
        state: RunState = torch.load(io.BytesIO(self.saved[step]), weights_only=True)
        return state
