"""GET /v1/jobs/{id}/checkpoint, init_from and the checkpoint fields' caps, on both stacks
(jobs run in this process by the worker's own code)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import load as load_safetensors
from sqlalchemy import Engine

from optimlab.service.api.main import create_app
from optimlab.service.db import metrics
from optimlab.service.jobs import keys
from optimlab.service.settings import Settings
from optimlab.worker.checkpoints import CheckpointStore
from optimlab.worker.engine.training import total_norm
from optimlab.worker.execution import execute
from tests.conftest import Stack

SPEC: dict[str, Any] = {
    "model": {"kind": "mlp", "hidden": [8]},
    "data": {"kind": "synthetic", "generator": "blobs", "samples": 60, "features": 3},
    "optimizer": {"name": "SGD", "lr": 0.1, "momentum": 0.9},
    "batch_size": 10, "steps": 30, "checkpoint_every": 10, "device": "cpu",
}


@pytest.fixture
def worker_settings(stack: Stack) -> Settings:
    return stack.settings.model_copy(update={"checkpoint_min_seconds": 0.0})


def run(client: TestClient, db: Engine, settings: Settings, spec: dict[str, Any]) -> str:
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 201, response.text
    job_id: str = response.json()["id"]
    execute([job_id], db=db, settings=settings, worker="w")
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"
    return job_id


def test_the_latest_checkpoint_downloads_as_safetensors(
        client: TestClient, db: Engine, worker_settings: Settings) -> None:
    job_id = run(client, db, worker_settings, SPEC)
    store = CheckpointStore(worker_settings.checkpoints)
    assert store.steps(job_id) == [9, 19, 29]

    latest = client.get(f"/v1/jobs/{job_id}/checkpoint")
    older = client.get(f"/v1/jobs/{job_id}/checkpoint", params={"step": 9})

    assert latest.status_code == 200
    assert latest.headers["content-type"] == "application/octet-stream"
    assert latest.headers["content-disposition"] == \
        f'attachment; filename="{job_id}-step-29.safetensors"'
    assert latest.headers["x-checkpoint-step"] == "29"
    for response, step in ((latest, 29), (older, 9)):
        tensors = load_safetensors(response.content)
        stored = store.load(job_id, step)
        assert stored is not None
        assert tensors.keys() == stored["model"].keys()
        assert all(torch.equal(tensors[k], stored["model"][k]) for k in tensors)
    assert client.get(f"/v1/jobs/{job_id}").json()["summary"]["checkpoint_step"] == 29


def test_no_checkpoint_answers_404(client: TestClient, db: Engine,
                                   worker_settings: Settings) -> None:
    queued = client.post("/v1/jobs", json=SPEC).json()["id"]
    assert client.get(f"/v1/jobs/{queued}/checkpoint").status_code == 404
    assert client.get(f"/v1/jobs/{uuid.uuid4()}/checkpoint").status_code == 404
    job_id = run(client, db, worker_settings, SPEC)
    missing = client.get(f"/v1/jobs/{job_id}/checkpoint", params={"step": 5})
    assert missing.status_code == 404
    assert "9, 19, 29" in missing.json()["detail"]


def test_init_from_starts_the_model_from_the_checkpoint(
        client: TestClient, db: Engine, worker_settings: Settings) -> None:
    source = run(client, db, worker_settings, SPEC)
    # lr 0: the parameters stay as loaded, so the first param_norm is the checkpoint's
    frozen = {**SPEC, "optimizer": {"name": "SGD", "lr": 0.0}, "steps": 2,
              "init_from": {"job": source, "step": 19}}

    job_id = run(client, db, worker_settings, frozen)

    state = CheckpointStore(worker_settings.checkpoints).load(source, 19)
    assert state is not None
    with db.connect() as conn:
        (norms,) = metrics.read_series(conn, uuid.UUID(job_id), ["param_norm"])
    assert norms.values[0] == total_norm(list(state["model"].values())).item()


def test_init_from_a_missing_checkpoint_is_refused_naming_the_field(
        client: TestClient, db: Engine, worker_settings: Settings) -> None:
    source = run(client, db, worker_settings, SPEC)

    no_step = client.post("/v1/jobs", json={**SPEC, "init_from": {"job": source, "step": 12}})
    no_job = client.post("/v1/jobs", json={**SPEC, "init_from": {"job": str(uuid.uuid4()),
                                                                  "step": 1}})

    assert no_step.status_code == 422
    assert no_step.json()["message"].startswith("init_from.step: ")
    assert "it has: 9, 19, 29" in no_step.json()["message"]
    assert no_job.status_code == 422
    assert no_job.json()["message"].startswith("init_from.job: ")


@pytest.fixture
def capped(stack: Stack) -> Iterator[TestClient]:
    settings = stack.settings.model_copy(update={"checkpoint_min_seconds": 5.0,
                                                 "checkpoint_min_steps": 100})
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize(("field", "value", "accepted"), [
    ("checkpoint_seconds", 4.5, False), ("checkpoint_seconds", 5.0, True),
    ("checkpoint_every", 99, False), ("checkpoint_every", 100, True)])
def test_checkpointing_more_often_than_the_service_allows_is_refused(
        capped: TestClient, field: str, value: float, accepted: bool) -> None:
    plain = {k: v for k, v in SPEC.items() if k != "checkpoint_every"}
    response = capped.post("/v1/jobs", json={**plain, field: value})
    assert response.status_code == (201 if accepted else 422), response.text
    if not accepted:
        assert response.json()["message"].startswith(f"{field}: ")


def test_another_owners_checkpoint_is_not_found(stack: Stack, db: Engine,
                                                worker_settings: Settings) -> None:
    alice, bob = (keys.create_key(db=db, name=name).key for name in ("alice", "bob"))
    with TestClient(create_app(worker_settings.model_copy(update={"auth": "required"}))) as c:
        c.headers["Authorization"] = f"Bearer {alice}"
        job_id = run(c, db, worker_settings, SPEC)
        assert c.get(f"/v1/jobs/{job_id}/checkpoint").status_code == 200
        c.headers["Authorization"] = f"Bearer {bob}"
        assert c.get(f"/v1/jobs/{job_id}/checkpoint").status_code == 404
        branched = c.post("/v1/jobs", json={**SPEC, "init_from": {"job": job_id, "step": 9}})
        assert branched.status_code == 422
        assert "init_from" in str(branched.json()["detail"])
