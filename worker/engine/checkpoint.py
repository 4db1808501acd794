"""What a run hands over so that another process can resume it: its whole state at a step,
and when to hand it over.

The state is plain data (tensors, numbers, strings, and lists and dicts of them) so that
``torch.load(weights_only=True)`` reads it back: a stored checkpoint can never run code.
The engine hands a state over only right after a flush stored every point up to its step,
so a resumed run needs nothing the dead one did not store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

# One run's state at the end of a step (``state["step"]``), as the engine builds it.
RunState = dict[str, Any]


@dataclass(frozen=True)
class CheckpointPolicy:
    """Checkpoint every ``every_steps`` steps or ``every_seconds`` seconds, whichever
    comes first, but never within ``min_seconds`` of the last one (a step count cannot
    make a big model write a checkpoint every step); neither set: never."""

    every_steps: int | None = None
    every_seconds: float | None = None
    min_seconds: float = 0.0

    def due(self, steps_since: int, seconds_since: float) -> bool:
        """Whether a checkpoint is due, ``steps_since`` steps and ``seconds_since`` seconds
        after the last one (or the run's start)."""
        if seconds_since < self.min_seconds:
            return False
        return (self.every_steps is not None and steps_since >= self.every_steps) or (
            self.every_seconds is not None and seconds_since >= self.every_seconds)


class Checkpointer(Protocol):
    policy: CheckpointPolicy

    def save(self, step: int, state: RunState) -> None:
        """Keep ``state``, the run's state after ``step``, for a later attempt to resume."""
        ...
