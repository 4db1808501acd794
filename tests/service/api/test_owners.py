"""API keys and owners on both stacks: every /v1 route, tried with another owner's key,
answers 404 or an empty list; without a key, or with an unknown or revoked one, 401; an
admin key sees everything. Quotas refuse whole submissions.

The routes are read from the app itself: a route added without a case here fails the test.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update

from optimlab.service.api.main import create_app
from optimlab.service.db import metrics
from optimlab.service.db.connection import make_engine
from optimlab.service.db.models import ApiKey, Job, StoredDataset, Sweep
from optimlab.service.jobs import keys
from tests.conftest import Stack
from tests.seed_table import SEED_SPEC

CSV = b"a,b,label\n1,2,0\n2,1,1\n3,3,0\n4,1,1\n"


@dataclass
class Owners:
    client: TestClient
    db: Engine
    alice: str
    bob: str
    admin: str
    revoked: str

    def as_(self, key: str | None) -> dict[str, str]:
        return {} if key is None else {"Authorization": f"Bearer {key}"}

    def call(self, key: str | None, method: str, url: str, **kwargs: Any) -> Any:
        return self.client.request(method, url, headers=self.as_(key), **kwargs)


def started(stack: Stack, **settings: Any) -> Iterator[Owners]:
    configured = stack.settings.model_copy(update={"auth": "required", **settings})
    db = make_engine(stack.settings.database)
    made = {name: keys.create_key(db=db, name=name, admin=name == "root").key
            for name in ("alice", "bob", "root", "gone")}
    gone = keys.list_keys(db=db)[-1]
    keys.revoke_key(db=db, key_id=gone.id)
    with TestClient(create_app(configured)) as client:
        yield Owners(client, db, made["alice"], made["bob"], made["root"], made["gone"])
    db.dispose()


@pytest.fixture
def owners(stack: Stack) -> Iterator[Owners]:
    yield from started(stack)


@dataclass(frozen=True)
class Alices:
    job: str
    sweep: str
    dataset: str


def alices_things(o: Owners) -> Alices:
    up = o.call(o.alice, "POST", "/v1/datasets", files={"file": ("d.csv", CSV)},
                data={"target": "label"})
    assert up.status_code == 201, up.text
    job = o.call(o.alice, "POST", "/v1/jobs", json=SEED_SPEC)
    assert job.status_code == 201, job.text
    sweep = o.call(o.alice, "POST", "/v1/sweeps", json={
        "base": SEED_SPEC, "axes": {"optimizer.lr": [0.01, 0.02]}})
    assert sweep.status_code == 201, sweep.text
    return Alices(job.json()["id"], sweep.json()["id"], up.json()["id"])


def upload_spec(dataset: str) -> dict[str, Any]:
    return {"name": "", "model": {"kind": "linear"},
            "data": {"kind": "upload", "dataset_id": dataset},
            "optimizer": {"name": "SGD", "lr": 0.1}, "steps": 10, "seed": 0}


# What another owner's request looks like on each route, and what it must answer:
# "404", "empty" (a list without Alice's), "unknown dataset" (a spec naming her data set
# is refused as an unknown one), "own" (an upload of the same file is Bob's own data set),
# "public" (the catalog: no one's data).
Case = tuple[str, Callable[[Alices], str], dict[str, Any], str]
CASES: dict[tuple[str, str], Case] = {
    ("POST", "/v1/jobs"): ("POST", lambda a: "/v1/jobs",
                           {"json": upload_spec("{dataset}")}, "unknown dataset"),
    ("GET", "/v1/jobs"): ("GET", lambda a: "/v1/jobs", {}, "empty"),
    ("GET", "/v1/jobs/{job_id}"): ("GET", lambda a: f"/v1/jobs/{a.job}", {}, "404"),
    ("POST", "/v1/jobs/{job_id}/cancel"): ("POST", lambda a: f"/v1/jobs/{a.job}/cancel", {},
                                           "404"),
    ("DELETE", "/v1/jobs/{job_id}"): ("DELETE", lambda a: f"/v1/jobs/{a.job}", {}, "404"),
    ("POST", "/v1/jobs/{job_id}/rerun"): ("POST", lambda a: f"/v1/jobs/{a.job}/rerun", {},
                                          "404"),
    ("PATCH", "/v1/jobs/{job_id}"): ("PATCH", lambda a: f"/v1/jobs/{a.job}",
                                     {"json": {"name": "mine now"}}, "404"),
    ("GET", "/v1/jobs/{job_id}/series"): ("GET", lambda a: f"/v1/jobs/{a.job}/series", {},
                                          "404"),
    ("GET", "/v1/jobs/{job_id}/logs"): ("GET", lambda a: f"/v1/jobs/{a.job}/logs", {}, "404"),
    # (that Alice's checkpoint itself is hidden: test_checkpoint_api.py)
    ("GET", "/v1/jobs/{job_id}/checkpoint"): ("GET", lambda a: f"/v1/jobs/{a.job}/checkpoint",
                                              {}, "404"),
    ("GET", "/v1/jobs/{job_id}/metrics"): ("GET", lambda a: f"/v1/jobs/{a.job}/metrics", {},
                                           "404"),
    ("GET", "/v1/jobs/{job_id}/metrics.csv"): (
        "GET", lambda a: f"/v1/jobs/{a.job}/metrics.csv", {}, "404"),
    ("GET", "/v1/jobs/{job_id}/events"): ("GET", lambda a: f"/v1/jobs/{a.job}/events", {},
                                          "404"),
    ("GET", "/v1/jobs/{job_id}/plot.{fmt}"): ("GET", lambda a: f"/v1/jobs/{a.job}/plot.svg",
                                              {}, "404"),
    ("GET", "/v1/jobs/{job_id}/landscape.{fmt}"): (
        "GET", lambda a: f"/v1/jobs/{a.job}/landscape.svg", {}, "404"),
    ("GET", "/v1/compare"): ("GET", lambda a: f"/v1/compare?jobs={a.job}", {}, "404"),
    ("GET", "/v1/compare/plot.{fmt}"): ("GET", lambda a: f"/v1/compare/plot.svg?jobs={a.job}",
                                        {}, "404"),
    ("GET", "/v1/compare/landscape.{fmt}"): (
        "GET", lambda a: f"/v1/compare/landscape.svg?jobs={a.job}", {}, "404"),
    ("POST", "/v1/sweeps"): ("POST", lambda a: "/v1/sweeps", {"json": {
        "base": upload_spec("{dataset}"), "axes": {"optimizer.lr": [0.1, 0.2]}}},
        "unknown dataset"),
    ("GET", "/v1/sweeps"): ("GET", lambda a: "/v1/sweeps", {}, "empty"),
    ("GET", "/v1/sweeps/{sweep_id}"): ("GET", lambda a: f"/v1/sweeps/{a.sweep}", {}, "404"),
    ("POST", "/v1/sweeps/{sweep_id}/cancel"): (
        "POST", lambda a: f"/v1/sweeps/{a.sweep}/cancel", {}, "404"),
    ("GET", "/v1/sweeps/{sweep_id}/events"): (
        "GET", lambda a: f"/v1/sweeps/{a.sweep}/events", {}, "404"),
    ("GET", "/v1/sweeps/{sweep_id}/plot.{fmt}"): (
        "GET", lambda a: f"/v1/sweeps/{a.sweep}/plot.svg", {}, "404"),
    ("POST", "/v1/datasets"): ("POST", lambda a: "/v1/datasets", {
        "files": {"file": ("d.csv", CSV)}, "data": {"target": "label"}}, "own"),
    ("GET", "/v1/datasets"): ("GET", lambda a: "/v1/datasets", {}, "empty"),
    ("GET", "/v1/datasets/{dataset_id}"): ("GET", lambda a: f"/v1/datasets/{a.dataset}", {},
                                           "404"),
    ("DELETE", "/v1/datasets/{dataset_id}"): (
        "DELETE", lambda a: f"/v1/datasets/{a.dataset}", {}, "404"),
    ("GET", "/v1/catalog"): ("GET", lambda a: "/v1/catalog", {}, "public"),
}


def v1_routes(client: TestClient) -> set[tuple[str, str]]:
    """Every (method, path) the app serves under /v1; included routers are expanded (this
    FastAPI keeps them as included routers, each with its routes' effective contexts)."""
    found: set[tuple[str, str]] = set()
    for route in client.app.routes:  # type: ignore[attr-defined]
        contexts = getattr(route, "effective_route_contexts", None)
        for each in (contexts() if contexts else [route]):
            path, methods = getattr(each, "path", ""), getattr(each, "methods", None) or set()
            if path.startswith("/v1"):
                found |= {(method, path) for method in methods - {"HEAD"}}
    return found


def request_of(case: Case, alices: Alices) -> tuple[str, str, dict[str, Any]]:
    method, url, kwargs, _ = case
    if "json" in kwargs:  # Alice's data set's id goes into the spec
        kwargs = {**kwargs, "json": filled(kwargs["json"], alices.dataset)}
    return method, url(alices), kwargs


def filled(value: Any, dataset: str) -> Any:
    if isinstance(value, dict):
        return {k: filled(v, dataset) for k, v in value.items()}
    return dataset if value == "{dataset}" else value


def test_every_v1_route_is_covered_here(owners: Owners) -> None:
    assert v1_routes(owners.client) == set(CASES)


def test_another_owner_gets_404_or_nothing_on_every_route(owners: Owners) -> None:
    alices = alices_things(owners)
    for route, case in CASES.items():
        method, url, kwargs = request_of(case, alices)
        response = owners.call(owners.bob, method, url, **kwargs)
        expected = case[3]
        if expected == "404":
            assert response.status_code == 404, (route, response.text)
            assert "detail" in response.json()
        elif expected == "empty":
            assert response.status_code == 200, (route, response.text)
            listed = {item["id"] for item in response.json()["data"]}
            assert not listed & {alices.job, alices.sweep, alices.dataset}, route
            assert len(listed) <= (route == ("GET", "/v1/datasets")), route  # Bob's upload
        elif expected == "unknown dataset":
            assert response.status_code == 422, (route, response.text)
            assert f"no uploaded data set {alices.dataset}" in response.json()["message"]
        elif expected == "own":
            assert response.status_code == 201, (route, response.text)
            assert response.json()["id"] != alices.dataset
        else:
            assert response.status_code == 200, (route, response.text)
    # nothing of Alice's changed: her job is still queued, named as it was, her data set kept
    job = owners.call(owners.alice, "GET", f"/v1/jobs/{alices.job}").json()
    assert (job["status"], job["name"]) == ("queued", "")
    assert owners.call(owners.alice, "GET", f"/v1/datasets/{alices.dataset}").status_code == 200
    assert owners.call(owners.alice, "GET", f"/v1/sweeps/{alices.sweep}").json()["counts"] == {
        "queued": 2}
    listed = owners.call(owners.alice, "GET", "/v1/jobs").json()["data"]
    assert len(listed) == 3  # her job and her sweep's two


def test_without_a_valid_key_every_route_is_401(owners: Owners) -> None:
    alices = alices_things(owners)
    for key in (None, "olk_" + "x" * 43, "not even a key", owners.revoked):
        for route, case in CASES.items():
            method, url, kwargs = request_of(case, alices)
            response = owners.call(key, method, url, **kwargs)
            assert response.status_code == 401, (key, route, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert "API key" in response.json()["detail"]


def test_without_a_key_even_a_malformed_request_is_401_not_422(owners: Owners) -> None:
    # The key is checked before the request is read: nothing about validation leaks.
    malformed: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/jobs", {"json": {}}), ("GET", "/v1/jobs/not-a-uuid", {}),
        ("GET", "/v1/jobs?limit=0", {}), ("POST", "/v1/datasets", {})]
    for method, url, kwargs in malformed:
        assert owners.call(None, method, url, **kwargs).status_code == 401, url
        assert owners.call(owners.bob, method, url, **kwargs).status_code == 422, url


def test_public_routes_need_no_key(owners: Owners) -> None:
    for path in ("/healthz", "/readyz", "/", "/jobs", "/openapi.json"):
        assert owners.client.get(path).status_code in (200, 503), path  # 503: no worker


def test_an_admin_key_sees_and_acts_on_everyone_s(owners: Owners) -> None:
    alices = alices_things(owners)
    listed = owners.call(owners.admin, "GET", "/v1/jobs").json()["data"]
    assert alices.job in {job["id"] for job in listed}
    assert owners.call(owners.admin, "GET", f"/v1/datasets/{alices.dataset}").status_code == 200
    assert len(owners.call(owners.admin, "GET", "/v1/sweeps").json()["data"]) == 1
    rerun = owners.call(owners.admin, "POST", f"/v1/jobs/{alices.job}/rerun")
    assert rerun.status_code == 201
    # a rerun belongs to the rerun job's owner: Alice sees it
    assert owners.call(owners.alice, "GET", f"/v1/jobs/{rerun.json()['id']}").status_code == 200
    cancelled = owners.call(owners.admin, "POST", f"/v1/jobs/{alices.job}/cancel")
    assert cancelled.json()["status"] == "cancelled"


def test_keys_of_one_owner_share_what_it_owns(owners: Owners) -> None:
    alices = alices_things(owners)
    ci = keys.create_key(db=owners.db, name="alice's ci", owner="alice").key
    assert owners.call(ci, "GET", f"/v1/jobs/{alices.job}").status_code == 200
    assert owners.call(ci, "GET", f"/v1/datasets/{alices.dataset}").status_code == 200
    spec = upload_spec(alices.dataset)  # her data set is known to her other key
    assert owners.call(ci, "POST", "/v1/jobs", json=spec).status_code == 201


def test_jobs_sweeps_and_data_sets_carry_their_owner(owners: Owners) -> None:
    alices_things(owners)
    with owners.db.connect() as conn:
        for table in (Job, Sweep, StoredDataset):
            assert set(conn.scalars(select(table.owner))) == {"alice"}, table


def test_a_key_is_stored_only_as_its_hash_and_last_use_is_recorded(owners: Owners) -> None:
    assert owners.call(owners.alice, "GET", "/v1/jobs").status_code == 200
    with owners.db.connect() as conn:
        rows = [tuple(str(v) for v in row) for row in conn.execute(select(ApiKey.__table__))]
        alice = conn.execute(select(ApiKey.__table__).where(ApiKey.name == "alice")).one()
    assert not any(owners.alice in value for row in rows for value in row)
    assert alice.key_hash == keys.hash_key(owners.alice)
    assert alice.last_used_at is not None
    assert owners.alice.startswith(keys.PREFIX)
    assert len(owners.alice) >= len(keys.PREFIX) + 43  # 32 random bytes in base64


# --- quotas ----------------------------------------------------------------------------------

@pytest.fixture
def limited(stack: Stack) -> Iterator[Owners]:
    yield from started(stack, quota_queued_jobs=3, quota_running_jobs=1,
                       quota_stored_points=5)


def test_the_queued_quota_refuses_a_job_and_a_sweep_whole(limited: Owners) -> None:
    o = limited
    for _ in range(2):
        assert o.call(o.alice, "POST", "/v1/jobs", json=SEED_SPEC).status_code == 201
    sweep = o.call(o.alice, "POST", "/v1/sweeps", json={
        "base": SEED_SPEC, "axes": {"optimizer.lr": [0.01, 0.02]}})
    assert sweep.status_code == 429, sweep.text
    assert (sweep.json()["quota"], sweep.json()["limit"]) == ("quota_queued_jobs", 3)
    assert "quota_queued_jobs" in sweep.json()["detail"]
    assert o.call(o.alice, "GET", "/v1/sweeps").json()["data"] == []  # nothing half-stored
    assert len(o.call(o.alice, "GET", "/v1/jobs").json()["data"]) == 2
    assert o.call(o.alice, "POST", "/v1/jobs", json=SEED_SPEC).status_code == 201
    assert o.call(o.alice, "POST", "/v1/jobs", json=SEED_SPEC).status_code == 429
    # quotas are per owner: Bob's queue is his own
    assert o.call(o.bob, "POST", "/v1/jobs", json=SEED_SPEC).status_code == 201


def test_the_running_and_stored_points_quotas(limited: Owners) -> None:
    o = limited
    job = o.call(o.alice, "POST", "/v1/jobs", json=SEED_SPEC).json()
    with o.db.begin() as conn:  # as a worker would have it: running, some points stored
        conn.execute(update(Job).where(Job.id == uuid.UUID(job["id"])).values(status="running"))
    refused = o.call(o.alice, "POST", "/v1/jobs", json=SEED_SPEC)
    assert refused.status_code == 429
    assert refused.json()["quota"] == "quota_running_jobs"
    with o.db.begin() as conn:
        conn.execute(update(Job).where(Job.id == uuid.UUID(job["id"])).values(status="succeeded"))
        metrics.write_points(conn, uuid.UUID(job["id"]),
                             [(step, "loss", 1.0) for step in range(5)])
    refused = o.call(o.alice, "POST", f"/v1/jobs/{job['id']}/rerun")
    assert refused.status_code == 403
    assert (refused.json()["quota"], refused.json()["limit"]) == ("quota_stored_points", 5)
    assert o.call(o.bob, "POST", "/v1/jobs", json=SEED_SPEC).status_code == 201
    assert o.call(o.alice, "DELETE", f"/v1/jobs/{job['id']}").status_code == 204
    assert o.call(o.alice, "POST", "/v1/jobs", json=SEED_SPEC).status_code == 201
