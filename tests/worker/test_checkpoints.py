"""The checkpoint store on a folder and on fsspec's in-memory object store."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import torch

from optimlab.worker.checkpoints import CheckpointStore
from optimlab.worker.engine.checkpoint import CheckpointPolicy


@pytest.fixture(params=["folder", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> CheckpointStore:
    if request.param == "folder":
        return CheckpointStore(str(tmp_path / "checkpoints"))
    return CheckpointStore(f"memory://checkpoints-{uuid.uuid4().hex}")


def test_the_latest_checkpoint_reads_back_tensors_and_plain_data(store: CheckpointStore) -> None:
    rng = torch.get_rng_state()
    store.save("job-a", 4, {"step": 4, "rng": rng, "nested": {"x": [1.5, None, "s"]}})
    store.save("job-a", 9, {"step": 9})
    store.save("job-b", 100, {"step": 100})
    assert store.steps("job-a") == [4, 9]
    step, state = store.latest("job-a", at_most=8) or (None, {})
    assert step == 4
    assert torch.equal(state["rng"], rng)
    assert state["nested"] == {"x": [1.5, None, "s"]}
    assert (store.latest("job-a") or (None,))[0] == 9
    assert store.latest("job-c") is None


def test_prune_keeps_the_newest_and_delete_forgets_the_key(store: CheckpointStore) -> None:
    for step in (1, 2, 3):
        store.save("job", step, {"step": step})
    store.prune("job", keep=1)
    assert store.steps("job") == [3]
    store.delete("job")
    assert store.steps("job") == []
    assert store.latest("job") is None


@pytest.mark.parametrize("key", ["../escape", "a/b", "", "x" * 201])
def test_a_key_never_names_a_path_outside_the_store(store: CheckpointStore, key: str) -> None:
    with pytest.raises(ValueError, match="not a checkpoint key"):
        store.save(key, 1, {})


def test_a_checkpoint_cannot_run_code_when_loaded(tmp_path: Path) -> None:
    store = CheckpointStore(str(tmp_path))
    store.save("job", 1, {"step": 1})
    evil = tmp_path / "job" / "step-000000000002.pt"
    torch.save({"f": print}, evil)  # a pickled callable: weights_only refuses it
    with pytest.raises(Exception, match=r"[Ww]eights only"):
        store.load("job", 2)


def test_policy_is_due_by_steps_or_seconds() -> None:
    assert CheckpointPolicy(every_steps=10).due(10, 0.0)
    assert not CheckpointPolicy(every_steps=10).due(9, 1e9)
    assert CheckpointPolicy(every_seconds=5.0).due(1, 5.0)
    assert not CheckpointPolicy().due(10**9, 1e9)
