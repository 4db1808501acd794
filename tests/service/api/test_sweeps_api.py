"""POST/GET /v1/sweeps without a worker: expansion, all-or-nothing validation, listing,
cancel, the leaderboard over stored summaries (both stacks)."""

from __future__ import annotations

import random
import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, update

from optimlab.service.db.models import Job, Sweep
from tests.conftest import Stack
from tests.seed_table import SEED_SPEC
from tests.stacks import queued_messages

GRID: dict[str, Any] = {"name": "lr x momentum", "tags": ["grid"], "base": SEED_SPEC,
                        "axes": {"optimizer.lr": [0.001, 0.01, 0.1],
                                 "optimizer.momentum": [0.0, 0.5, 0.9]},
                        "seeds": 2}


def counts(db: Engine) -> tuple[int, int]:
    with db.connect() as conn:
        return (int(conn.scalar(select(func.count()).select_from(Sweep)) or 0),
                int(conn.scalar(select(func.count()).select_from(Job)) or 0))


def test_a_grid_queues_one_job_per_point_and_seed(client: TestClient, db: Engine,
                                                  stack: Stack) -> None:
    response = client.post("/v1/sweeps", json=GRID)
    assert response.status_code == 201, response.text
    sweep = response.json()
    assert response.headers["location"] == f"/v1/sweeps/{sweep['id']}"
    assert sweep["size"] == 18
    assert sweep["counts"] == {"queued": 18}
    assert sweep["status"] == "queued"
    # the points differ only in optimizer options and seed: one fused task carries them all
    assert queued_messages(stack) == 1
    assert len(sweep["fusion"]["tasks"]) == 1
    assert len(sweep["fusion"]["tasks"][0]) == 18
    assert sweep["fusion"]["alone"] == []

    jobs = client.get("/v1/jobs", params={"sweep": sweep["id"], "limit": 100}).json()["data"]
    assert len(jobs) == 18
    seen = {(j["sweep_point"]["optimizer.lr"], j["sweep_point"]["optimizer.momentum"],
             j["spec"]["seed"]) for j in jobs}
    assert seen == {(lr, m, s) for lr in (0.001, 0.01, 0.1) for m in (0.0, 0.5, 0.9)
                    for s in (0, 1)}
    for job in jobs:
        assert job["spec"]["optimizer"]["lr"] == job["sweep_point"]["optimizer.lr"]
        assert job["spec"]["optimizer"]["momentum"] == job["sweep_point"]["optimizer.momentum"]
        assert "grid" in job["tags"]
        assert job["name"].startswith("lr x momentum [")
    assert {j["id"] for j in client.get("/v1/jobs", params={"tag": "grid", "limit": 100})
            .json()["data"]} == {j["id"] for j in jobs}


def test_fuse_false_sends_every_job_alone(client: TestClient, stack: Stack) -> None:
    sweep = client.post("/v1/sweeps", json={**GRID, "fuse": False}).json()
    assert queued_messages(stack) == 18
    assert sweep["fusion"]["tasks"] == []
    assert len(sweep["fusion"]["alone"]) == 18
    assert all("fuse: false" in entry["reason"] for entry in sweep["fusion"]["alone"])


def test_one_invalid_point_refuses_the_whole_sweep(client: TestClient, db: Engine,
                                                   stack: Stack) -> None:
    bad = {**GRID, "axes": {"optimizer.lr": [0.01, -1.0], "optimizer.momentum": [0.0, 0.9]}}
    response = client.post("/v1/sweeps", json=bad)

    assert response.status_code == 422, response.text
    message = response.json()["message"]
    assert message.startswith("points.4: point 4 (optimizer.lr=-1, optimizer.momentum=0, "
                              "seed=0): optimizer"), message
    assert "lr" in message
    assert counts(db) == (0, 0)
    assert queued_messages(stack) == 0


# Five rows; ``b`` has four values: the model fits a split of 0.2 (four training rows) in
# batches of 4 or whole, and fails on batches of 2 or on all five rows.
FOUR_ROWS: dict[str, Any] = {
    "model": {"kind": "expression", "expression": "w*u + b",
              "parameters": {"w": 0.0, "b": [0.0] * 4}},
    "data": {"kind": "inline", "inputs": {"u": [0.0, 1.0, 2.0, 3.0, 4.0]},
             "targets": [1.0, 3.0, 5.0, 7.0, 9.0], "val_fraction": 0.2},
    "loss": "mse", "optimizer": {"name": "SGD", "lr": 0.01}, "steps": 10}


def test_the_one_point_that_fails_is_named_among_points_sharing_their_problem(
        client: TestClient, db: Engine, stack: Stack) -> None:
    """Points that differ in options and seed share their problem's checks, but each one's
    optimizer, step and schedule are checked: the first that fails is refused by name."""
    cases = [  # (body, the message's start)
        ({**GRID, "axes": {"optimizer.lr": [0.01, 0.1], "optimizer.nesterov": [False, True]}},
         "points.2: point 2 (optimizer.lr=0.01, optimizer.nesterov=True, seed=0): optimizer: "
         "SGD refused its arguments: Nesterov momentum requires a momentum"),
        ({**GRID, "base": {**SEED_SPEC, "schedule": {"name": "StepLR", "step_size": 5}},
          "axes": {"optimizer.lr": [0.01, 0.1], "schedule.step_size": [5, 0]}},
         "points.2: point 2 (optimizer.lr=0.01, schedule.step_size=0, seed=0): schedule: "
         "StepLR fails while stepping"),
        ({**GRID, "axes": {"optimizer.lr": [0.01, 0.1, 0.2]}, "seeds": [3, 7, 11],
          "base": {**SEED_SPEC, "schedule": {"name": "LambdaLR", "lr_lambda": "0.9**step"}}},
         None),  # valid: the control
        ({**GRID, "axes": {"optimizer.lr": [0.01, 0.1, 0.2],
                           "schedule.lr_lambda": ["0.9**step", "1/(step - 3)"]},
          "base": {**SEED_SPEC, "schedule": {"name": "LambdaLR", "lr_lambda": "1"}}},
         "points.2: point 2 (optimizer.lr=0.01, schedule.lr_lambda=1/(step - 3), seed=0): "
         "schedule: LambdaLR fails while stepping"),
    ]
    for body, start in cases:
        response = client.post("/v1/sweeps", json=body)
        if start is None:
            assert response.status_code == 201, response.text
            continue
        assert response.status_code == 422, response.text
        assert response.json()["message"].startswith(start), response.json()["message"]
    assert counts(db) == (1, 9)
    assert queued_messages(stack) == 1


def test_a_batch_size_or_data_field_that_breaks_the_model_is_refused(
        client: TestClient, db: Engine, stack: Stack) -> None:
    """Points that differ in batching or data are different problems, each one checked."""
    cases = [
        ({"batch_size": [None, 4, 2]},
         "points.4: point 4 (batch_size=2, seed=0): model.expression: "),
        ({"data.val_fraction": [0.2, 0.0]},
         "points.2: point 2 (data.val_fraction=0, seed=0): model.expression: "),
    ]
    for axes, start in cases:
        body = {"base": FOUR_ROWS, "seeds": 2, "fuse": False, "axes": axes}
        response = client.post("/v1/sweeps", json=body)
        assert response.status_code == 422, response.text
        assert response.json()["message"].startswith(start), response.json()["message"]
    assert counts(db) == (0, 0)
    assert queued_messages(stack) == 0
    fine = client.post("/v1/sweeps", json={"base": FOUR_ROWS, "seeds": 2,
                                           "axes": {"batch_size": [None, 4]}})
    assert fine.status_code == 201, fine.text


def test_jobs_are_stored_and_sent_in_the_order_of_their_points(client: TestClient,
                                                               db: Engine,
                                                               stack: Stack) -> None:
    sweep = client.post("/v1/sweeps", json={**GRID, "fuse": False}).json()
    with db.connect() as conn:
        rows = conn.execute(select(Job.id, Job.sweep_point, Job.spec, Job.name, Job.queue)
                            .where(Job.sweep_id == uuid.UUID(sweep["id"]))
                            .order_by(Job.created_at, Job.id)).all()
    assert [(r.sweep_point["optimizer.lr"], r.sweep_point["optimizer.momentum"],
             r.spec["seed"]) for r in rows] == [
        (lr, m, s) for lr in (0.001, 0.01, 0.1) for m in (0.0, 0.5, 0.9) for s in (0, 1)]
    assert [str(r.id) for r in rows] == [e["job_id"] for e in sweep["fusion"]["alone"]]
    assert {r.queue for r in rows} == {stack.settings.queue("cpu")}
    assert rows[0].name == "lr x momentum [optimizer.lr=0.001, optimizer.momentum=0, seed=0]"
    assert rows[0].spec["tags"] == ["grid"]


def test_refusals_name_the_field(client: TestClient, db: Engine) -> None:
    cases = [  # (where the message starts, what else it must name, body)
        ("axes", "use mode 'random'",
         {**GRID, "axes": {"optimizer.lr": {"log_uniform": [1e-3, 1e-1]}}}),
        ("points.0", "optimizer.nosuch: SGD has no keyword 'nosuch'",
         {**GRID, "axes": {"optimizer.nosuch": [1]}, "seeds": None}),
        ("axes.optimizer.lr.x", "optimizer.lr is a value",
         {**GRID, "axes": {"optimizer.lr.x": [1]}}),
        ("points.0", "nosuch: Extra inputs are not permitted", {**GRID, "axes": {"nosuch": [1]}}),
        ("base", "Field required", {"axes": {}}),
        ("seeds", "greater than or equal to 1", {**GRID, "seeds": -1}),
        ("samples", "needs samples", {**GRID, "mode": "random"}),
    ]
    for field, detail, body in cases:
        response = client.post("/v1/sweeps", json=body)
        assert response.status_code == 422, (field, response.text)
        message = response.json()["message"]
        assert message.startswith((f"{field}:", f"{field}.")), message
        assert detail in message, message
    assert counts(db) == (0, 0)


def test_an_oversized_sweep_is_refused_before_expanding(client: TestClient,
                                                        db: Engine) -> None:
    huge = {**GRID, "axes": {f"a{i}": list(range(100)) for i in range(8)}}
    response = client.post("/v1/sweeps", json=huge)
    assert response.status_code == 422
    assert "at most 5000" in response.json()["message"]


def test_leaderboard_ranks_the_stored_summaries(client: TestClient, db: Engine) -> None:
    sweep = client.post("/v1/sweeps", json=GRID).json()
    rng = random.Random(1)
    with db.begin() as conn:
        ids = list(conn.scalars(select(Job.id).where(Job.sweep_id == uuid.UUID(sweep["id"]))))
        for job_id in ids[:-1]:
            conn.execute(update(Job).where(Job.id == job_id).values(
                status="succeeded", summary={"final_loss": rng.uniform(0, 5),
                                             "steps_per_second": rng.uniform(1, 100)}))
    jobs = {j["id"]: j for j in client.get(
        "/v1/jobs", params={"sweep": sweep["id"], "limit": 100}).json()["data"]}

    for rank_by, key, reverse in (("final_loss", "final_loss", False),
                                  ("-steps_per_second", "steps_per_second", True)):
        body = client.get(f"/v1/sweeps/{sweep['id']}", params={"rank_by": rank_by}).json()
        finished = [j for j in jobs.values() if j["summary"]]
        by_hand = sorted(finished, key=lambda j: j["summary"][key], reverse=reverse)
        board = body["leaderboard"]
        assert [e["job_id"] for e in board[:-1]] == [j["id"] for j in by_hand]
        assert board[-1]["value"] is None
        assert board[-1]["status"] == "queued"
        assert [e["rank"] for e in board] == list(range(1, 19))
        for entry in board:
            assert entry["point"] == jobs[entry["job_id"]]["sweep_point"]
        means = [p["mean"] for p in body["by_point"] if p["mean"] is not None]
        assert means == sorted(means, reverse=reverse)
        assert sum(p["values"] for p in body["by_point"]) == 17
    assert body["counts"] == {"succeeded": 17, "queued": 1}
    assert body["status"] == "running"

    refused = client.get(f"/v1/sweeps/{sweep['id']}", params={"rank_by": "nonsense"})
    assert refused.status_code == 422
    assert refused.json()["message"].startswith("rank_by:")


def test_cancel_stops_every_unfinished_job(client: TestClient, db: Engine) -> None:
    sweep = client.post("/v1/sweeps", json=GRID).json()
    with db.begin() as conn:
        first = conn.scalars(select(Job.id).where(Job.sweep_id == uuid.UUID(sweep["id"]))).first()
        conn.execute(update(Job).where(Job.id == first).values(status="succeeded"))

    cancelled = client.post(f"/v1/sweeps/{sweep['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["counts"] == {"succeeded": 1, "cancelled": 17}
    assert cancelled.json()["status"] == "finished"


def test_list_and_unknown_sweeps(client: TestClient) -> None:
    made = [client.post("/v1/sweeps", json={**GRID, "tags": [tag], "seeds": None,
                                            "axes": {"optimizer.lr": [0.1]}}).json()["id"]
            for tag in ("a", "b", "a")]
    page = client.get("/v1/sweeps", params={"limit": 2}).json()
    rest = client.get("/v1/sweeps", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [s["id"] for s in page["data"] + rest["data"]] == made[::-1]
    assert rest["next_cursor"] is None
    assert [s["id"] for s in client.get("/v1/sweeps", params={"tag": "a"}).json()["data"]] \
        == [made[2], made[0]]
    assert page["data"][0]["counts"] == {"queued": 1}

    missing = "00000000-0000-0000-0000-000000000000"
    assert client.get(f"/v1/sweeps/{missing}").status_code == 404
    assert client.post(f"/v1/sweeps/{missing}/cancel").status_code == 404
