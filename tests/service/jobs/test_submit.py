"""Submitting: queue routing, and a broker that cannot be reached (on the real databases)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from optimlab.service.db import jobs, workers
from optimlab.service.jobs.callers import LOCAL
from optimlab.service.jobs.errors import BrokerUnavailable
from optimlab.service.jobs.submit import choose_queue, submit_job
from optimlab.worker.spec import JobSpec
from tests.conftest import Stack
from tests.seed_table import SEED_SPEC


def spec(device: str) -> JobSpec:
    return JobSpec.model_validate({**SEED_SPEC, "device": device})


@pytest.mark.parametrize(("device", "gpu_workers", "queue"), [
    ("cpu", 0, "cpu"), ("cpu", 2, "cpu"), ("cuda", 0, "gpu"), ("cuda", 1, "gpu"),
    ("auto", 0, "cpu"), ("auto", 1, "gpu"),
])
def test_jobs_route_to_the_gpu_queue_when_they_need_or_can_use_a_gpu(
        device: str, gpu_workers: int, queue: str, stack: Stack) -> None:
    chosen = choose_queue(spec(device), stack.settings, gpu_workers=gpu_workers)
    assert chosen == stack.settings.queue(queue)


def test_an_auto_job_goes_to_the_gpu_queue_while_a_gpu_worker_lives(db: Engine,
                                                                     stack: Stack) -> None:
    sent: list[str] = []

    class Recorder:
        def dispatch(self, job_id: str, queue: str) -> None:
            sent.append(queue)

        def dispatch_fused(self, job_ids: list[str], queue: str) -> None:
            raise AssertionError("a single job is never fused")

        def ping(self, timeout: float = 2.0) -> None:
            pass

    s = stack.settings
    submit_job(db=db, caller=LOCAL, dispatcher=Recorder(), settings=s, spec=spec("auto"))
    with db.begin() as conn:
        workers.register_worker(conn, name="gpu0@test", queues=[s.queue("gpu"), s.queue("cpu")],
                                device="cuda:0", pid=1)
    submit_job(db=db, caller=LOCAL, dispatcher=Recorder(), settings=s, spec=spec("auto"))

    assert sent == [s.queue("cpu"), s.queue("gpu")]


def test_an_unreachable_broker_fails_the_job_and_says_so(db: Engine, stack: Stack) -> None:
    class Down:
        def dispatch(self, job_id: str, queue: str) -> None:
            raise ConnectionRefusedError("connection refused")

        def dispatch_fused(self, job_ids: list[str], queue: str) -> None:
            raise ConnectionRefusedError("connection refused")

        def ping(self, timeout: float = 2.0) -> None:
            raise ConnectionRefusedError("connection refused")

    with pytest.raises(BrokerUnavailable, match="unreachable"):
        submit_job(db=db, caller=LOCAL, dispatcher=Down(), settings=stack.settings,
                   spec=spec("cpu"))

    with db.connect() as conn:
        (stored,) = jobs.list_jobs(conn, status=None, limit=10, after=None)
        live = workers.live_workers(conn, within=timedelta(minutes=1))
    assert stored.status == jobs.FAILED
    assert stored.error is not None
    assert "could not be queued" in stored.error
    assert live == []
