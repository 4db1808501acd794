"""With the broker unreachable (a real Redis URL nobody listens on): 503s, nothing lost."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from optimlab.service.api.main import create_app
from tests.conftest import Stack
from tests.processes import free_port
from tests.seed_table import SEED_SPEC


def test_readyz_and_submit_say_503_when_redis_is_down(stack: Stack) -> None:
    settings = stack.settings.model_copy(
        update={"broker_url": f"redis://127.0.0.1:{free_port()}/0"})
    with TestClient(create_app(settings)) as client:
        started = time.monotonic()
        ready = client.get("/readyz")
        posted = client.post("/v1/jobs", json=SEED_SPEC)
        seconds = time.monotonic() - started
        listed = client.get("/v1/jobs").json()["data"]

    assert ready.status_code == 503
    assert ready.json()["database"] == "ok"
    assert ready.json()["broker"].startswith("unreachable")
    assert posted.status_code == 503
    assert "broker" in posted.json()["detail"]
    assert seconds < 15, f"the API hung {seconds:.1f} s on a dead broker"
    (job,) = listed
    assert job["status"] == "failed"
    assert "could not be queued" in job["error"]


def test_readyz_waits_for_a_worker_when_configured_to(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"ready_requires_worker": True})
    with TestClient(create_app(settings)) as client:
        ready = client.get("/readyz")

    assert ready.status_code == 503
    assert ready.json() == {"ready": False, "database": "ok", "broker": "ok", "workers": 0}
