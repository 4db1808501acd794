"""The byte layout of a stored chunk."""

from __future__ import annotations

import math
import struct

import numpy as np
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


def test_a_range_of_steps_and_a_float32_array_pack_as_lists_would() -> None:
    values = np.array([0.1, -0.0, np.inf, np.nan, 3e-45], dtype=np.float32)
    as_lists = pack(list(range(7, 12)), values.tolist())
    assert pack(range(7, 12), values) == as_lists
    assert as_lists[0] is None
    _, unpacked = unpack(7, 11, *as_lists)
    assert [struct.pack("<d", v) for v in unpacked.tolist()] == \
        [struct.pack("<d", v) for v in values.tolist()]


def test_a_range_with_gaps_is_stored_as_steps() -> None:
    step_bytes, _ = pack(range(0, 10, 5), [1.0, 2.0])
    assert step_bytes is not None
    steps, _ = unpack(0, 5, step_bytes, struct.pack("<2d", 1.0, 2.0))
    assert steps.tolist() == [0, 5]


@pytest.mark.parametrize(("steps", "values", "message"), [
    ([1, 2, 2], [0.0, 0.0, 0.0], "step 2 appears twice"),
    ([1, 2], [0.0], "as many steps as values"),
    ([], [], "at least one"),
    (range(1, 3), [0.0], "as many steps as values"),
    (range(3, 3), [], "at least one"),
    (range(1, 3), np.zeros((2, 1)), "as many steps as values"),
])
def test_malformed_chunks_are_refused(steps: list[int] | range, values: list[float],
                                      message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pack(steps, values)


def test_a_chunk_whose_sizes_disagree_is_refused_on_read() -> None:
    with pytest.raises(ValueError, match="holds 3 steps and 2 values"):
        unpack(0, 2, None, struct.pack("<2d", 1.0, 2.0))
