"""The byte layout of a stored chunk of one series: steps and values as packed arrays.

Values are little-endian float64, so every float the engine records (NaN, infinities,
-0.0) comes back bit for bit. Steps are little-endian int64, or nothing at all when they
are consecutive, which is how every per-step series arrives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Steps = npt.NDArray[np.int64]
Values = npt.NDArray[np.float64]

STEP_TYPE = np.dtype("<i8")
VALUE_TYPE = np.dtype("<f8")


def pack(steps: Sequence[int] | Steps, values: Sequence[float] | npt.NDArray[np.floating[Any]]
         ) -> tuple[bytes | None, bytes]:
    """(step bytes or None when consecutive, value bytes), in step order; a step may
    appear once. Steps given as a range of step 1 are consecutive as they are."""
    value_array = np.asarray(values, dtype=VALUE_TYPE)
    if isinstance(steps, range) and steps.step == 1:
        if len(steps) != value_array.size or value_array.ndim != 1 or not len(steps):
            raise ValueError(f"a chunk needs as many steps as values, at least one: got "
                             f"{len(steps)} steps and {value_array.shape} values")
        return None, value_array.tobytes()
    step_array = np.asarray(steps, dtype=STEP_TYPE)
    if step_array.ndim != 1 or step_array.shape != value_array.shape or not step_array.size:
        raise ValueError(f"a chunk needs as many steps as values, at least one: got "
                         f"{step_array.shape} steps and {value_array.shape} values")
    gaps = np.diff(step_array)
    if gaps.size and gaps.min() < 0:
        order = np.argsort(step_array, kind="stable")
        step_array, value_array = step_array[order], value_array[order]
        gaps = np.diff(step_array)
    if gaps.size and gaps.min() == 0:
        raise ValueError(f"step {int(step_array[1:][gaps == 0][0])} appears twice in a chunk")
    consecutive = int(step_array[-1]) - int(step_array[0]) == step_array.size - 1
    return (None if consecutive else step_array.tobytes()), value_array.tobytes()


def unpack(first_step: int, last_step: int, step_bytes: bytes | None,
           value_bytes: bytes) -> tuple[Steps, Values]:
    values = np.frombuffer(value_bytes, dtype=VALUE_TYPE)
    if step_bytes is None:
        steps = np.arange(first_step, last_step + 1, dtype=np.int64)
    else:
        steps = np.frombuffer(step_bytes, dtype=STEP_TYPE)
    if steps.shape != values.shape:
        raise ValueError(f"a stored chunk holds {steps.size} steps and {values.size} values")
    return steps.astype(np.int64, copy=False), values.astype(np.float64, copy=False)
