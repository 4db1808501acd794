"""TensorBoard's scalar smoothing: a debiased exponential moving average.

For each finite value ``v``, with weight ``w`` in [0, 1)::

    last = last * w + (1 - w) * v        # last starts at 0
    smoothed = last / (1 - w ** k)       # k: finite values seen so far, this one included

Dividing by ``1 - w ** k`` removes the pull towards the starting 0, so the first smoothed
value is the first value. A non-finite value (NaN, +-inf) is passed through and leaves the
average alone, as TensorBoard does. TensorBoard also passes a constant series through
unchanged, to spare it rounding noise (0.1 smoothed could read 0.10000000000000002);
a stream cannot know in advance that the series is constant, so here the values equal to
every finite value before them pass through: the same output for a constant series, and
for any other the same up to rounding in its constant beginning.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


class Ema:
    """One series, smoothed value by value (in step order), in constant memory."""

    def __init__(self, weight: float) -> None:
        if not 0.0 <= weight < 1.0:
            raise ValueError(f"the smoothing weight must be in [0, 1), got {weight}")
        self.weight = weight
        self._last = 0.0
        self._count = 0  # finite values so far
        self._first: float | None = None
        self._constant = True

    def __call__(self, value: float) -> float:
        if not math.isfinite(value):
            return value
        w = self.weight
        self._last = self._last * w + (1.0 - w) * value
        self._count += 1
        if self._first is None:
            self._first = value
        self._constant = self._constant and value == self._first
        return value if self._constant else self._last / (1.0 - w ** self._count)


def smooth(values: Iterable[float], weight: float) -> list[float]:
    ema = Ema(weight)
    return [ema(v) for v in values]
