"""Which jobs of a sweep fuse together, and why the others run alone."""

from __future__ import annotations

from typing import Any

from optimlab.service.jobs.fusion import ALONE_IN_GROUP, plan_fusion
from optimlab.worker.spec import JobSpec
from tests.seed_table import SEED_SPEC


def specs(*changes: dict[str, Any]) -> list[JobSpec]:
    return [JobSpec.model_validate({**SEED_SPEC, **change}) for change in changes]


def test_jobs_that_differ_in_optimizer_options_schedule_and_seed_fuse() -> None:
    plan = plan_fusion(specs(
        {"optimizer": {"name": "SGD", "lr": 0.1}},
        {"optimizer": {"name": "SGD", "lr": 0.01, "momentum": 0.9}, "seed": 3},
        {"optimizer": {"name": "SGD", "lr": 0.01}, "schedule": {"name": "StepLR",
                                                                "step_size": 5}},
        {"optimizer": {"name": "SGD", "lr": 0.01}, "stop": {"loss_below": 1.0}, "name": "x"},
    ), enabled=True, max_jobs=128)
    assert plan.tasks == [[0, 1, 2, 3]]
    assert plan.alone == []


def test_what_changes_the_computation_splits_groups() -> None:
    plan = plan_fusion(specs(
        {"optimizer": {"name": "SGD", "lr": 0.1}},
        {"optimizer": {"name": "Adam", "lr": 0.1}},
        {"optimizer": {"name": "SGD", "lr": 0.2}},
        {"optimizer": {"name": "Adam", "lr": 0.2}},
        {"optimizer": {"name": "SGD", "lr": 0.2}, "steps": 30},
    ), enabled=True, max_jobs=128)
    assert sorted(plan.tasks) == [[0, 2], [1, 3]]
    assert plan.alone == [(4, ALONE_IN_GROUP)]


def test_schedules_that_cycle_momentum_fuse_only_with_each_other() -> None:
    cycling = {"name": "OneCycleLR", "max_lr": 0.05}
    plan = plan_fusion(specs(
        {"optimizer": {"name": "SGD", "lr": 0.01, "momentum": 0.9}, "schedule": cycling},
        {"optimizer": {"name": "SGD", "lr": 0.01, "momentum": 0.9},
         "schedule": {"name": "StepLR", "step_size": 5}},
        {"optimizer": {"name": "SGD", "lr": 0.02, "momentum": 0.8}, "schedule": cycling},
        {"optimizer": {"name": "SGD", "lr": 0.02, "momentum": 0.9}},
        {"optimizer": {"name": "SGD", "lr": 0.02, "momentum": 0.9},
         "schedule": {**cycling, "cycle_momentum": False}},
    ), enabled=True, max_jobs=128)
    assert sorted(plan.tasks) == [[0, 2], [1, 3, 4]]


def test_what_the_fused_engine_does_not_cover_runs_alone_with_the_reason() -> None:
    plan = plan_fusion(specs(
        {"optimizer": {"name": "LBFGS", "lr": 0.1}},
        {"optimizer": {"name": "LBFGS", "lr": 0.2}},
        {"optimizer": {"name": "Rprop", "lr": 0.1}},
        {"optimizer": {"name": "SGD", "lr": 0.1}, "schedule": {"name": "ReduceLROnPlateau"}},
        {"optimizer": {"name": "SGD", "lr": 0.2}, "schedule": {"name": "ReduceLROnPlateau"}},
        {"optimizer": {"name": "SGD", "lr": 0.1}, "clip_grad_norm": 1.0},
    ), enabled=True, max_jobs=128)
    reasons = dict(plan.alone)
    assert plan.tasks == []
    assert "closure" in reasons[0]
    assert "Rprop" in reasons[2]
    assert "ReduceLROnPlateau" in reasons[3]
    assert "clip_grad_norm" in reasons[5]


def test_big_groups_split_evenly_and_fuse_false_turns_it_off() -> None:
    many = specs(*({"optimizer": {"name": "SGD", "lr": 0.001 * (i + 1)}} for i in range(10)))
    plan = plan_fusion(many, enabled=True, max_jobs=4)
    assert [len(t) for t in plan.tasks] == [4, 3, 3]
    assert sorted(i for t in plan.tasks for i in t) == list(range(10))
    off = plan_fusion(many, enabled=False, max_jobs=4)
    assert off.tasks == []
    assert [i for i, _ in off.alone] == list(range(10))
    assert "fuse: false" in off.alone[0][1]
