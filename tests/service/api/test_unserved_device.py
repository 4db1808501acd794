"""device: cuda with no GPU worker: refused at submit; failed, saying why, when the last
GPU worker goes while it waits. CPU jobs queue without any worker, as ever."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from optimlab.service.api.main import create_app
from optimlab.service.db import workers
from tests.conftest import Stack
from tests.seed_table import SEED_SPEC
from tests.stacks import queued_messages, wait_for

CUDA: dict[str, Any] = {**SEED_SPEC, "device": "cuda"}


@pytest.fixture
def api(stack: Stack) -> Iterator[TestClient]:
    settings = stack.settings.model_copy(update={"unserved_wait_seconds": 1.0})
    with TestClient(create_app(settings)) as client:
        yield client


def gpu_worker(db: Engine, stack: Stack) -> None:
    s = stack.settings
    with db.begin() as conn:
        workers.register_worker(conn, name="gpu0@test", queues=[s.queue("gpu"), s.queue("cpu")],
                                device="cuda:0", pid=1)


def test_cuda_without_a_gpu_worker_is_refused_naming_device(api: TestClient) -> None:
    refused = api.post("/v1/jobs", json=CUDA)
    cpu = api.post("/v1/jobs", json=SEED_SPEC)
    sweep = api.post("/v1/sweeps", json={"base": SEED_SPEC, "axes": {"device": ["cpu", "cuda"]}})

    assert refused.status_code == 422, refused.text
    (error,) = refused.json()["detail"]
    assert error["loc"] == ["body", "device"]
    assert "no live worker serves the queue" in error["msg"]
    assert sweep.status_code == 422, sweep.text
    assert sweep.json()["detail"][0]["loc"] == ["body", "axes", "device"]
    assert cpu.status_code == 201
    # Nothing stored for the refusals: only the cpu job, queued for a worker to come.
    assert [(j["id"], j["status"]) for j in api.get("/v1/jobs").json()["data"]] == [
        (cpu.json()["id"], "queued")]
    assert api.get("/v1/sweeps").json()["data"] == []


def test_a_cuda_job_left_without_gpu_worker_fails_after_the_wait(
        api: TestClient, db: Engine, stack: Stack) -> None:
    gpu_worker(db, stack)
    cuda = api.post("/v1/jobs", json=CUDA)
    cpu = api.post("/v1/jobs", json={**SEED_SPEC, "device": "cpu"})
    auto = api.post("/v1/jobs", json={**SEED_SPEC, "device": "auto"})
    assert cuda.status_code == cpu.status_code == auto.status_code == 201, cuda.text
    assert api.get(f"/v1/jobs/{cuda.json()['id']}").json()["status"] == "queued"

    with db.begin() as conn:
        workers.unregister_worker(conn, "gpu0@test")  # the last GPU worker goes
    failed = wait_for(lambda: (job := api.get(f"/v1/jobs/{cuda.json()['id']}").json())
                      ["status"] == "failed" and job, timeout=30, interval=0.2,
                      what="the cuda job to fail")

    assert "no GPU worker" in failed["error"]
    assert "unserved_wait_seconds" in failed["error"]
    assert api.get(f"/v1/jobs/{cpu.json()['id']}").json()["status"] == "queued"
    # auto went to the gpu queue while the GPU worker lived; now it waits for a CPU.
    wait_for(lambda: queued_messages(stack, "cpu") == 2, timeout=30, what="auto on cpu")
    assert api.get(f"/v1/jobs/{auto.json()['id']}").json()["status"] == "queued"
