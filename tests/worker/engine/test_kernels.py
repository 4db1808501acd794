"""The engine's one entry: a run of one job or many, through the kernel it chooses, gives
each job the history it has alone."""

from __future__ import annotations

import math

import pytest

from optimlab.worker.engine import kernels
from optimlab.worker.engine.kernels import ONE_JOB, choose_kernel, train
from optimlab.worker.engine.loop import run_training
from optimlab.worker.engine.sink import ListSink, MetricPoint
from optimlab.worker.spec import JobSpec
from tests.worker.engine.fused.fusing import LR_SCALE, PROBLEMS, grid


def _bits(points: list[MetricPoint]) -> list[tuple[int, str, float | str]]:
    return sorted((s, n, "nan" if math.isnan(v) else v) for s, n, v in points)


def _alone(specs: list[JobSpec]) -> list[list[MetricPoint]]:
    histories = []
    for spec in specs:
        sink = ListSink()
        run_training(spec, sink)
        histories.append(sink.points)
    return histories


@pytest.mark.parametrize("problem", ["seed", "mlp"])
@pytest.mark.parametrize("fuse", [True, False])
def test_train_gives_every_job_its_history_alone(problem: str, fuse: bool,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def unused(*args: object, **kwargs: object) -> None:
        raise AssertionError("the other kernel ran")

    # fused: no job goes through the loop one by one; fuse=False: nothing is fused
    monkeypatch.setattr(kernels, "run_training" if fuse else "run_fused", unused)
    raw = grid(PROBLEMS[problem], {"name": "SGD"}, "momentum", [0.0, 0.9],
               [0.002 * LR_SCALE[problem], 0.01 * LR_SCALE[problem]])
    specs = [JobSpec.model_validate(r) for r in raw]
    sink = ListSink()
    summaries = train(specs, sink, fuse=fuse)
    assert len(sink.jobs) == len(summaries) == len(specs)
    assert [_bits(points) for points in sink.jobs] == [_bits(p) for p in _alone(specs)]
    assert [s.steps_done for s in summaries] == [spec.steps for spec in specs]


def test_the_kernel_is_fused_for_a_group_and_alone_otherwise() -> None:
    raw = grid(PROBLEMS["seed"], {"name": "SGD"}, "momentum", [0.0, 0.9], [0.002, 0.01])
    specs = [JobSpec.model_validate(r) for r in raw]
    kernel, reason = choose_kernel(specs)
    assert kernel is not None
    assert reason is None
    assert kernel.built.params[0].shape[0] == len(specs)

    assert choose_kernel(specs[:1]) == (None, ONE_JOB)
    assert choose_kernel(specs[:1], resuming=True)[0] is not None
    other = specs[1].model_copy(update={"steps": 7})
    assert choose_kernel([specs[0], other]) == (None, "the jobs do not share a fusion key")
    clipped = [s.model_copy(update={"clip_grad_norm": 1.0}) for s in specs[:2]]
    assert choose_kernel(clipped) == (None, "the jobs do not share a fusion key")


def test_a_run_of_one_job_is_the_loop_itself() -> None:
    spec = JobSpec.model_validate(PROBLEMS["seed"])
    sink = ListSink()
    (summary,) = train([spec], sink)
    assert _bits(sink.points) == _bits(_alone([spec])[0])
    assert summary.steps_done == spec.steps
