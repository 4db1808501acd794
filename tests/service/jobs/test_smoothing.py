"""TensorBoard's debiased EMA, against a reference written from its closed form."""

from __future__ import annotations

import math
import random

import pytest

from optimlab.service.jobs.smoothing import Ema, smooth


def reference(values: list[float], weight: float) -> list[float]:
    """The k-th finite value's smoothed value is the weighted mean of the finite values so
    far, weights w**(k-j) for the j-th: sum((1-w) w**(k-j) v_j) / (1 - w**k). Non-finite
    values pass through and take no part."""
    out: list[float] = []
    finite: list[float] = []
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        finite.append(v)
        k = len(finite)
        weights = [weight ** (k - j) for j in range(1, k + 1)]
        out.append(math.fsum(w * x for w, x in zip(weights, finite, strict=True))
                   / math.fsum(weights))
    return out


def close(got: list[float], want: list[float]) -> bool:
    return len(got) == len(want) and all(
        (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-12)
        for a, b in zip(got, want, strict=True))


@pytest.mark.parametrize("weight", [0.0, 0.3, 0.6, 0.9, 0.99, 0.999])
def test_smoothing_matches_the_reference(weight: float) -> None:
    rng = random.Random(int(weight * 1000))
    values = [10 / (1 + i / 20) + rng.gauss(0, 0.5) for i in range(300)]

    got = smooth(values, weight)

    assert close(got, reference(values, weight))
    assert got[0] == pytest.approx(values[0])  # debiased: no pull towards 0


def test_non_finite_values_pass_through_and_leave_the_average_alone() -> None:
    values = [3.0, 2.0, math.nan, 4.0, math.inf, 1.0, -math.inf, 5.0, math.nan]

    got = smooth(values, 0.7)

    assert close(got, reference(values, 0.7))
    assert math.isnan(got[2])
    assert got[4] == math.inf
    assert got[6] == -math.inf
    finite_only = smooth([v for v in values if math.isfinite(v)], 0.7)
    assert [v for v in got if math.isfinite(v)] == finite_only


def test_a_constant_series_is_returned_exactly() -> None:
    values = [0.1] * 50
    assert smooth(values, 0.95) == values
    # ...and a constant start exactly, then the average as usual
    ramp = [0.1] * 5 + [0.2, 0.3, 0.4]
    got = smooth(ramp, 0.5)
    assert got[:5] == [0.1] * 5
    assert close(got, reference(ramp, 0.5))


def test_weight_zero_is_the_identity_and_the_weight_is_checked() -> None:
    values = [1.5, -2.0, 7.25]
    assert smooth(values, 0.0) == values
    for weight in (-0.1, 1.0, math.nan):
        with pytest.raises(ValueError, match="smoothing weight"):
            Ema(weight)


def test_the_stream_gives_the_list_one_value_at_a_time() -> None:
    rng = random.Random(5)
    values = [rng.uniform(-1, 1) for _ in range(100)]
    ema = Ema(0.8)
    assert [ema(v) for v in values] == smooth(values, 0.8)
