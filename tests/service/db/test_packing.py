"""The byte layout of a stored chunk."""

from __future__ import annotations

import math
import struct

import pytest

from optimlab.service.db.packing import pack, unpack

ODD = [math.nan, math.inf, -math.inf, -0.0, 5e-324, 1e308]


def test_consecutive_steps_are_not_stored() -> None:
    step_bytes, value_bytes = pack([5, 6, 7, 8, 9, 10], ODD)
    assert step_bytes is None
    assert len(value_bytes) == 8 * len(ODD)
    steps, values = unpack(5, 10, step_bytes, value_bytes)
    assert steps.tolist() == [5, 6, 7, 8, 9, 10]
    assert [struct.pack("<d", v) for v in values.tolist()] == [struct.pack("<d", v) for v in ODD]


def test_gapped_steps_are_stored_and_put_in_order() -> None:
    step_bytes, value_bytes = pack([100, 0, 50], [3.0, 1.0, 2.0])
    assert step_bytes is not None
    steps, values = unpack(0, 100, step_bytes, value_bytes)
    assert steps.tolist() == [0, 50, 100]
    assert values.tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(("steps", "values", "message"), [
    ([1, 2, 2], [0.0, 0.0, 0.0], "step 2 appears twice"),
    ([1, 2], [0.0], "as many steps as values"),
    ([], [], "at least one"),
])
def test_malformed_chunks_are_refused(steps: list[int], values: list[float],
                                      message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pack(steps, values)


def test_a_chunk_whose_sizes_disagree_is_refused_on_read() -> None:
    with pytest.raises(ValueError, match="holds 3 steps and 2 values"):
        unpack(0, 2, None, struct.pack("<2d", 1.0, 2.0))
