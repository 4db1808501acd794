"""Which worker processes `optimlab worker --gpus ...` starts, and what each consumes."""

from __future__ import annotations

import pytest

from optimlab.service.settings import Settings
from optimlab.worker.launch import GpuSelectionError, plan_workers

SETTINGS = Settings(queue_prefix="lab-", database_url="sqlite://", broker_url="memory://")


def test_no_gpu_means_one_cpu_worker_on_the_cpu_queue() -> None:
    for gpus in ("all", "none"):
        (plan,) = plan_workers(gpus, SETTINGS, visible_gpus=0)
        assert plan.queues == ["lab-cpu"]
        assert plan.device == "cpu"
        assert plan.env == {}


def test_none_ignores_visible_gpus() -> None:
    (plan,) = plan_workers("none", SETTINGS, visible_gpus=4)
    assert plan.device == "cpu"


def test_all_gives_one_pinned_worker_per_gpu_consuming_gpu_and_cpu_queues() -> None:
    plans = plan_workers("all", SETTINGS, visible_gpus=3)

    assert [p.env for p in plans] == [{"CUDA_VISIBLE_DEVICES": str(i)} for i in range(3)]
    assert all(p.queues == ["lab-gpu", "lab-cpu"] for p in plans)
    assert [p.device for p in plans] == ["cuda:0", "cuda:1", "cuda:2"]
    assert len({p.name for p in plans}) == 3


def test_a_list_picks_those_gpus() -> None:
    plans = plan_workers("1,3", SETTINGS, visible_gpus=4)
    assert [p.env["CUDA_VISIBLE_DEVICES"] for p in plans] == ["1", "3"]


@pytest.mark.parametrize(("gpus", "visible"), [("2", 2), ("0,5", 4), ("one", 1), ("-1", 2)])
def test_a_gpu_that_is_not_there_is_refused(gpus: str, visible: int) -> None:
    with pytest.raises(GpuSelectionError, match=r"GPU|--gpus"):
        plan_workers(gpus, SETTINGS, visible_gpus=visible)
