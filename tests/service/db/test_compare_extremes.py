"""Bucket extremes of a comparison: reduceat over runs of sorted steps gives what
ufunc.at gives, empty buckets included."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from optimlab.service.db.compare import _extremes

Array = np.ndarray[Any, Any]


def brute(bucket: Array, values: Array, count: int) -> tuple[Array, Array]:
    low, high = np.full(count, np.inf), np.full(count, -np.inf)
    np.minimum.at(low, bucket, values)
    np.maximum.at(high, bucket, values)
    return low, high


@pytest.mark.parametrize("ordered", [True, False])
def test_extremes_equal_the_general_way(ordered: bool) -> None:
    rng = np.random.default_rng(3)
    bucket = np.sort(rng.integers(0, 40, 5000)) if ordered else rng.integers(0, 40, 5000)
    bucket[bucket == 7] = 8  # an empty bucket
    values = rng.normal(size=5000)
    low, high = _extremes(bucket, values, 41)
    want_low, want_high = brute(bucket, values, 41)
    assert np.array_equal(low, want_low)
    assert np.array_equal(high, want_high)
    assert low[7] == np.inf
    assert high[40] == -np.inf


def test_no_values_leave_every_bucket_empty() -> None:
    low, high = _extremes(np.array([], dtype=np.int64), np.array([]), 3)
    assert list(low) == [np.inf] * 3
    assert list(high) == [-np.inf] * 3
