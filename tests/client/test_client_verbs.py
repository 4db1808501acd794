"""The client's verbs whose routes come from the api-verbs branch (delete, rerun, update,
series, logs), to the contract in the issue's brief: these pass once it is merged."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from optimlab.client import Client, Conflict, NotFound, SpecRefused
from tests.seed_table import SEED_SPEC


def test_delete_a_finished_job_and_refuse_a_running_one(
        client: Client, long_job: dict[str, Any]) -> None:
    done = client.wait(client.submit(SEED_SPEC)["id"], timeout=120)

    client.delete(done["id"])
    with pytest.raises(Conflict):
        client.delete(long_job["id"])

    with pytest.raises(NotFound):
        client.job(done["id"])
    with pytest.raises(NotFound):
        client.history(done["id"])
    with pytest.raises(NotFound):
        client.delete(done["id"])


def test_rerun_makes_a_new_job_with_the_same_spec(client: Client,
                                                  seed_job: dict[str, Any]) -> None:
    again = client.rerun(seed_job["id"])
    done = client.wait(again["id"], timeout=120)

    assert again["id"] != seed_job["id"]
    assert again["spec"] == seed_job["spec"]
    assert again["sweep_id"] is None
    assert client.history(done["id"], ["loss"]) == client.history(seed_job["id"], ["loss"])
    with pytest.raises(NotFound):
        client.rerun(uuid.uuid4())


def test_update_renames_and_retags(client: Client) -> None:
    job = client.submit({**SEED_SPEC, "name": "before", "tags": ["a"]})

    renamed = client.update(job["id"], name="after")
    retagged = client.update(job["id"], tags=["b", "c"])

    assert (renamed["name"], renamed["tags"]) == ("after", ["a"])
    assert (retagged["name"], sorted(retagged["tags"])) == ("after", ["b", "c"])
    assert client.job(job["id"])["name"] == "after"
    with pytest.raises(SpecRefused) as refused:
        client.update(job["id"], tags=["x" * 1000])
    assert refused.value.fields[0].startswith("tags")


def test_series_lists_every_stored_series_loss_and_lr_first(
        client: Client, seed_job: dict[str, Any]) -> None:
    series = client.series(seed_job["id"])

    names = [s["name"] for s in series]
    assert names[:2] == ["loss", "lr"]
    assert names[2:] == sorted(names[2:])
    assert "param.x" in names
    loss = series[0]
    assert (loss["points"], loss["first_step"], loss["last_step"]) == (20, 0, 19)
    with pytest.raises(NotFound):
        client.series(uuid.uuid4())


def test_logs_hold_the_runs_start_and_end(client: Client, seed_job: dict[str, Any]) -> None:
    lines = client.logs(seed_job["id"])

    assert lines
    assert {"attempt", "at", "level", "logger", "message"} <= set(lines[0])
    assert all(line["attempt"] == 1 for line in lines)
    assert [line["at"] for line in lines] == sorted(line["at"] for line in lines)
    assert client.logs(seed_job["id"], attempt=2) == []
    with pytest.raises(NotFound):
        client.logs(uuid.uuid4())
