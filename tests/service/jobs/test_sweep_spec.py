"""Sweep requests: validation of axes and modes, and the points they expand into."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from optimlab.service.jobs.sweep_spec import PathError, SweepSpec, expand, set_path
from tests.seed_table import SEED_SPEC


def sweep(**fields: Any) -> SweepSpec:
    return SweepSpec.model_validate({"base": SEED_SPEC, **fields})


def test_a_grid_is_every_combination_with_seeds_innermost() -> None:
    s = sweep(axes={"optimizer.lr": [0.1, 0.01], "batch_size": [1, None],
                    "optimizer.name": ["SGD", "Adam"]}, seeds=[3, 4])
    points = expand(s)

    assert s.size() == len(points) == 16
    assert [p.index for p in points] == list(range(16))
    first, second = points[0], points[1]
    assert first.values == second.values == {"optimizer.lr": 0.1, "batch_size": 1,
                                             "optimizer.name": "SGD"}
    assert [first.spec["seed"], second.spec["seed"]] == [3, 4]
    assert points[2].values["optimizer.name"] == "Adam"
    assert points[-1].spec["optimizer"] == {"name": "Adam", "lr": 0.01}
    assert points[-1].spec["batch_size"] is None
    assert SEED_SPEC["optimizer"] == {"name": "SGD", "lr": 0.01}  # the base is not touched


def test_seeds_as_a_count_and_no_seeds() -> None:
    assert [p.spec["seed"] for p in expand(sweep(axes={"steps": [5]}, seeds=3))] == [0, 1, 2]
    only = expand(sweep(axes={"steps": [5, 6]}))
    assert [p.spec.get("seed") for p in only] == [SEED_SPEC.get("seed")] * 2


def test_random_mode_draws_reproducibly_within_bounds() -> None:
    request = {"mode": "random", "samples": 200, "sample_seed": 9,
               "axes": {"optimizer.lr": {"log_uniform": [1e-4, 1e-1]},
                        "optimizer.momentum": {"uniform": [0.5, 0.99]},
                        "batch_size": [1, 2], "optimizer.name": {"choice": ["SGD", "RMSprop"]}}}
    points = expand(sweep(**request))
    again = expand(sweep(**request))
    other = expand(sweep(**{**request, "sample_seed": 10}))

    assert [p.values for p in points] == [p.values for p in again]
    assert [p.values for p in points] != [p.values for p in other]
    lrs = [p.values["optimizer.lr"] for p in points]
    assert all(1e-4 <= v <= 1e-1 for v in lrs)
    # log-uniform: about as many draws in each decade
    decades = [sum(10 ** -(k + 1) <= v < 10 ** -k for v in lrs) for k in (1, 2, 3)]
    assert min(decades) > 40, decades
    assert all(0.5 <= p.values["optimizer.momentum"] <= 0.99 for p in points)
    assert {p.values["batch_size"] for p in points} == {1, 2}
    assert {p.values["optimizer.name"] for p in points} == {"SGD", "RMSprop"}


@pytest.mark.parametrize(("fields", "message"), [
    ({"axes": {"optimizer.lr": {"log_uniform": [1e-3, 1e-1]}}}, "use mode 'random'"),
    ({"axes": {"optimizer.lr": [0.1]}, "mode": "random"}, "needs samples"),
    ({"axes": {"optimizer.lr": [0.1]}, "samples": 3}, "samples is for mode 'random'"),
    ({"axes": {"seed": [1, 2]}, "seeds": 2}, "not both"),
    ({"axes": {"optimizer.lr": {"log_uniform": [0.0, 1.0]}}, "mode": "random", "samples": 1},
     "0 < low < high"),
    ({"axes": {"optimizer.lr": {"uniform": [1.0, 1.0]}}, "mode": "random", "samples": 1},
     "low < high"),
    ({"axes": {"optimizer.lr": []}}, "at least 1"),
    ({"axes": {"optimizer..lr": [1]}}, "pattern"),
    ({"axes": {"a b": [1]}}, "pattern"),
    ({"axes": {"optimizer.lr": [0.1]}, "seeds": 0}, "seeds"),
])
def test_bad_requests_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        sweep(**fields)


def test_set_path_walks_dicts_and_lists() -> None:
    spec: dict[str, Any] = {"model": {"hidden": [64, 32]}, "schedule": None}
    set_path(spec, "model.hidden.1", 8)
    set_path(spec, "schedule.name", "StepLR")
    set_path(spec, "stop.loss_below", 1e-3)
    assert spec == {"model": {"hidden": [64, 8]}, "schedule": {"name": "StepLR"},
                    "stop": {"loss_below": 1e-3}}
    with pytest.raises(PathError, match="no index"):
        set_path(spec, "model.hidden.2", 1)
    with pytest.raises(PathError, match="is a value"):
        set_path(spec, "stop.loss_below.x", 1)


def test_size_is_known_before_expanding() -> None:
    s = sweep(axes={f"a{i}": list(range(10)) for i in range(6)}, seeds=5)
    assert s.size() == 5 * 10**6
    assert math.prod([3, 3]) * 2 == sweep(axes={"steps": [1, 2, 3],
                                                "optimizer.lr": [1, 2, 3]}, seeds=2).size()
