"""Run the engine into a history, and compare histories value by value (1e-6 relative)."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

from optimlab.worker.engine import ListSink, TrainingSummary, run_training
from optimlab.worker.spec import JobSpec

REL_TOL = 1e-6
History = dict[str, list[float]]


def engine_history(raw: dict[str, Any]) -> tuple[History, TrainingSummary]:
    sink = ListSink()
    summary = run_training(JobSpec.model_validate(raw), sink)
    names = sorted({name for _, name, _ in sink.points})
    return {name: sink.series(name) for name in names}, summary


_COMPUTED: dict[str, tuple[History, TrainingSummary]] = {}


def expected_history(raw: dict[str, Any]) -> tuple[History, TrainingSummary]:
    """``engine_history(raw)``, computed once per test process: the reference that the
    end-to-end tests compare a worker's stored history with (several train the same spec).
    Never for a test of the engine's own determinism, which must run it each time."""
    key = json.dumps(raw, sort_keys=True)
    if key not in _COMPUTED:
        _COMPUTED[key] = engine_history(raw)
    return copy.deepcopy(_COMPUTED[key])


def relative_deviation(a: float, b: float) -> float:
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    return abs(a - b) / max(abs(a), abs(b))


def assert_same_history(engine: History, reference: History) -> float:
    """Compare every series value by value; return the largest relative deviation."""
    assert sorted(engine) == sorted(reference), "recorded series differ"
    worst, where = 0.0, ""
    failures = []
    for name, expected in reference.items():
        got = engine[name]
        assert len(got) == len(expected), f"{name}: {len(got)} values, expected {len(expected)}"
        for step, (a, b) in enumerate(zip(got, expected, strict=True)):
            deviation = relative_deviation(a, b)
            if deviation > worst:
                worst, where = deviation, f"{name}[{step}]"
            if not (math.isclose(a, b, rel_tol=REL_TOL, abs_tol=0)
                    or (math.isnan(a) and math.isnan(b))):
                failures.append(f"{name}[{step}]: engine {a!r}, reference {b!r}")
    assert not failures, (f"{len(failures)} values differ (max relative deviation {worst:.3g} "
                          f"at {where}):\n" + "\n".join(failures[:10]))
    return worst
