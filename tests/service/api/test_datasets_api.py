"""/v1/datasets on SQLite and on PostgreSQL: upload, list, get, delete; refusals store nothing."""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, func, select, update

from optimlab.service.api.main import create_app
from optimlab.service.db import jobs
from optimlab.service.db.dataset_source import SqlDatasetSource
from optimlab.service.db.models import Job, StoredDataset
from optimlab.worker.engine.data.uploads import load_upload
from optimlab.worker.spec_errors import SpecError
from tests.conftest import Stack

CSV = b"height,weight,label\n1.5,60,0\n1.8,80.5,1\n1.6,70,1\n1.7,75,2\n"
DATASET_FIELDS = {"id", "name", "filename", "format", "target", "rows", "features", "classes",
                  "size_bytes", "created_at"}


def npz(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


IMAGES = npz(X=np.random.default_rng(0).random((5, 3, 4), dtype=np.float32),
             y=np.array([0, 1, 0, 1, 1]))


@pytest.fixture(autouse=True)
def no_datasets(db: Engine) -> Iterator[None]:
    """The PostgreSQL database lives for the whole session: start and end without uploads."""
    with db.begin() as conn:
        conn.execute(delete(StoredDataset))
    yield
    with db.begin() as conn:
        conn.execute(delete(StoredDataset))


def upload(client: TestClient, content: bytes, filename: str = "people.csv",
           **form: str) -> Any:
    return client.post("/v1/datasets", files={"file": (filename, content)}, data=form)


def stored_count(db: Engine) -> int:
    with db.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(StoredDataset)) or 0)


def insert_job(db: Engine, dataset_id: str) -> str:
    spec = {"name": "", "model": {"kind": "linear"},
            "data": {"kind": "upload", "dataset_id": dataset_id},
            "optimizer": {"name": "SGD", "lr": 0.1}, "steps": 10, "seed": 0}
    with db.begin() as conn:
        return str(jobs.insert_job(conn, name="uses the upload", spec=spec, queue="cpu").id)


def test_upload_a_csv_then_get_and_list_it(client: TestClient) -> None:
    response = upload(client, CSV, target="label")

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == DATASET_FIELDS
    assert body["id"] == hashlib.sha256(CSV).hexdigest()
    assert response.headers["location"] == f"/v1/datasets/{body['id']}"
    assert body["name"] == "people.csv"
    assert body["filename"] == "people.csv"
    assert body["format"] == "csv"
    assert body["target"] == "label"
    assert (body["rows"], body["features"], body["classes"]) == (4, 2, 3)
    assert body["size_bytes"] == len(CSV)
    assert body["created_at"].endswith("Z")

    fetched = client.get(f"/v1/datasets/{body['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == body
    assert client.get("/v1/datasets").json() == {"data": [body]}


def test_upload_an_npz_of_images_with_a_name(client: TestClient) -> None:
    response = upload(client, IMAGES, filename="images.npz", name="tiny images")

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "tiny images"
    assert body["format"] == "npz"
    assert body["target"] is None
    assert (body["rows"], body["features"], body["classes"]) == (5, 12, 2)


def test_the_list_is_newest_first(client: TestClient) -> None:
    ids = [upload(client, CSV + f"1,1,{i}\n".encode(), target="label").json()["id"]
           for i in range(3)]

    listed = client.get("/v1/datasets").json()["data"]

    assert [d["id"] for d in listed] == ids[::-1]


def test_uploading_the_same_file_again_gives_the_stored_dataset(client: TestClient,
                                                               db: Engine) -> None:
    first = upload(client, CSV, target="label")
    again = upload(client, CSV, filename="copy.csv", name="another name", target="label")

    assert again.status_code == 201
    assert again.json() == first.json()
    assert stored_count(db) == 1


def test_the_same_file_with_another_target_is_409(client: TestClient, db: Engine) -> None:
    first = upload(client, CSV, target="label").json()

    response = upload(client, CSV, target="weight")

    assert response.status_code == 409
    assert first["id"] in response.json()["detail"]
    assert client.get(f"/v1/datasets/{first['id']}").json()["target"] == "label"
    assert stored_count(db) == 1


def test_a_file_over_the_limit_is_413_and_not_stored(stack: Stack, db: Engine) -> None:
    settings = stack.settings.model_copy(update={"max_upload_bytes": 1_000})
    big = b"a,label\n" + b"1.25,0\n" * 200
    with TestClient(create_app(settings)) as client:
        refused = upload(client, big, target="label")
        accepted = upload(client, CSV, target="label")

    assert refused.status_code == 413
    assert "1000 bytes" in refused.json()["detail"]
    assert accepted.status_code == 201
    assert stored_count(db) == 1


def pickled_npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, X=np.array([object(), None], dtype=object), y=np.ones(2))
    return buffer.getvalue()


MALFORMED: list[tuple[str, bytes, str, dict[str, str], list[str]]] = [
    ("bad cell", b"a,b,label\n1,2,3\n4,oops,6\n", "d.csv", {"target": "label"},
     ["file:", "line 3", "column 'b'", "'oops'"]),
    ("ragged", b"a,b,label\n1,2,3\n4,5\n", "d.csv", {"target": "label"},
     ["file:", "line 3", "2 cells"]),
    ("nan", b"a,b,label\n1,nan,3\n", "d.csv", {"target": "label"}, ["file:", "finite"]),
    ("no target", CSV, "d.csv", {}, ["target:", "target column"]),
    ("unknown target", CSV, "d.csv", {"target": "age"}, ["target:", "'age'"]),
    ("empty", b"", "d.csv", {"target": "label"}, ["file:", "empty"]),
    ("pickled npz", pickled_npz(), "d.npz", {}, ["file:", "pickle"]),
    ("npz without y", npz(X=np.ones((2, 2))), "d.npz", {}, ["file:", "'y'"]),
    ("not a zip", b"hello", "d.npz", {}, ["file:", "not an NPZ file"]),
]


@pytest.mark.parametrize(("case", "content", "filename", "form", "expected"), MALFORMED,
                         ids=[m[0] for m in MALFORMED])
def test_a_malformed_file_is_422_naming_the_problem_and_not_stored(
        client: TestClient, db: Engine, case: str, content: bytes, filename: str,
        form: dict[str, str], expected: list[str]) -> None:
    response = upload(client, content, filename=filename, **form)

    assert response.status_code == 422, f"{case}: {response.status_code} {response.text}"
    body = response.json()
    assert body["detail"]
    for part in expected:
        assert part in body["message"], (case, part, body["message"])
    assert stored_count(db) == 0
    assert client.get("/v1/datasets").json() == {"data": []}


def test_a_request_without_a_file_is_422(client: TestClient, db: Engine) -> None:
    response = client.post("/v1/datasets", data={"target": "label"})

    assert response.status_code == 422
    assert "file" in response.json()["message"]
    assert stored_count(db) == 0


def test_unknown_datasets_are_404(client: TestClient) -> None:
    unknown = "0" * 64

    assert client.get(f"/v1/datasets/{unknown}").status_code == 404
    assert client.delete(f"/v1/datasets/{unknown}").status_code == 404
    assert client.get("/v1/datasets/not-an-id").status_code == 404


def test_delete_removes_the_dataset(client: TestClient, db: Engine) -> None:
    dataset_id = upload(client, CSV, target="label").json()["id"]

    response = client.delete(f"/v1/datasets/{dataset_id}")

    assert response.status_code == 204
    assert response.content == b""
    assert client.get(f"/v1/datasets/{dataset_id}").status_code == 404
    assert client.get("/v1/datasets").json() == {"data": []}
    assert stored_count(db) == 0


def delete_jobs(db: Engine, job_ids: list[str]) -> None:
    with db.begin() as conn:
        conn.execute(delete(Job).where(Job.id.in_([uuid.UUID(j) for j in job_ids])))


def set_status(db: Engine, job_id: str, status: str) -> None:
    with db.begin() as conn:
        conn.execute(update(Job).where(Job.id == uuid.UUID(job_id)).values(status=status))


def test_delete_is_409_while_a_queued_job_reads_the_dataset(client: TestClient,
                                                           db: Engine) -> None:
    dataset_id = upload(client, CSV, target="label").json()["id"]
    other_id = upload(client, IMAGES, filename="images.npz").json()["id"]
    job_id = insert_job(db, dataset_id)

    refused = client.delete(f"/v1/datasets/{dataset_id}")

    assert refused.status_code == 409
    assert job_id in refused.json()["detail"]
    assert "1 queued" in refused.json()["detail"]
    assert client.get(f"/v1/datasets/{dataset_id}").status_code == 200
    # a job reading another data set does not hold this one
    assert client.delete(f"/v1/datasets/{other_id}").status_code == 204
    # a cancelled job still refers to it (it could be rerun); once it is gone, so may it be
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    assert "1 cancelled" in client.delete(f"/v1/datasets/{dataset_id}").json()["detail"]
    delete_jobs(db, [job_id])
    assert client.delete(f"/v1/datasets/{dataset_id}").status_code == 204


def test_delete_is_409_while_a_running_job_reads_the_dataset(client: TestClient,
                                                            db: Engine) -> None:
    dataset_id = upload(client, CSV, target="label").json()["id"]
    job_id = insert_job(db, dataset_id)
    with db.begin() as conn:
        claim = jobs.claim_job(conn, uuid.UUID(job_id), worker="test", stale_before=datetime.min,
                               max_attempts=3)
    assert claim is not None

    assert client.delete(f"/v1/datasets/{dataset_id}").status_code == 409


def test_delete_is_409_while_jobs_in_any_state_refer_to_the_dataset(client: TestClient,
                                                                    db: Engine) -> None:
    dataset_id = upload(client, CSV, target="label").json()["id"]
    statuses = [jobs.SUCCEEDED, jobs.FAILED, jobs.CANCELLED, jobs.SUCCEEDED, jobs.QUEUED,
                jobs.SUCCEEDED, jobs.RUNNING]
    job_ids = [insert_job(db, dataset_id) for _ in statuses]
    for job_id, status in zip(job_ids, statuses, strict=True):
        set_status(db, job_id, status)

    refused = client.delete(f"/v1/datasets/{dataset_id}")

    assert refused.status_code == 409
    message = refused.json()["detail"]
    assert f"data set {dataset_id} is used by 7 job(s)" in message
    assert "1 cancelled, 1 failed, 1 queued, 1 running, 3 succeeded" in message
    # the first five by age are named, then how many more
    assert all(job_id in message for job_id in job_ids[:5])
    assert not any(job_id in message for job_id in job_ids[5:])
    assert "and 2 more" in message
    assert client.get(f"/v1/datasets/{dataset_id}").status_code == 200

    delete_jobs(db, job_ids[:-1])  # one finished job is enough to keep it
    set_status(db, job_ids[-1], jobs.SUCCEEDED)
    still = client.delete(f"/v1/datasets/{dataset_id}")
    assert still.status_code == 409
    assert "1 succeeded" in still.json()["detail"]

    delete_jobs(db, job_ids[-1:])
    assert client.delete(f"/v1/datasets/{dataset_id}").status_code == 204


def test_jobs_on_other_data_have_no_say(client: TestClient, db: Engine) -> None:
    dataset_id = upload(client, CSV, target="label").json()["id"]
    with db.begin() as conn:  # a spec that merely mentions the id elsewhere
        jobs.insert_job(conn, name=dataset_id, spec={
            "model": {"kind": "linear"}, "data": {"kind": "sklearn", "name": "iris"},
            "optimizer": {"name": "SGD", "lr": 0.1}, "steps": 1, "tags": [dataset_id]},
            queue="cpu")

    assert client.delete(f"/v1/datasets/{dataset_id}").status_code == 204


# --- the engine's source of uploads ---------------------------------------------------------


def test_the_sql_source_loads_what_was_uploaded(client: TestClient, db: Engine) -> None:
    csv_id = upload(client, CSV, target="weight").json()["id"]
    npz_id = upload(client, IMAGES, filename="images.npz").json()["id"]
    source = SqlDatasetSource(db)

    from_csv = source.load(csv_id)
    from_npz = source.load(npz_id)

    expected = load_upload(CSV, "csv", "weight")
    assert list(from_csv.columns) == ["height", "label"]
    assert all(torch.equal(from_csv.columns[n], expected.columns[n]) for n in expected.columns)
    assert torch.equal(from_csv.targets, expected.targets)  # type: ignore[arg-type]
    assert from_npz.image_shape == (1, 3, 4)
    assert from_npz.columns["x"].shape == (5, 1, 3, 4)


def test_the_sql_source_refuses_unknown_ids_naming_the_field(db: Engine) -> None:
    with pytest.raises(SpecError) as caught:
        SqlDatasetSource(db).load("f" * 64)

    assert caught.value.loc == ("data", "dataset_id")
    assert "f" * 64 in caught.value.message


def test_a_job_trains_on_an_uploaded_data_set(client: TestClient, db: Engine,
                                              stack: Stack) -> None:
    from optimlab.worker.execution import execute

    dataset = upload(client, CSV, target="label").json()
    spec = {"model": {"kind": "mlp", "hidden": [4]},
            "data": {"kind": "upload", "dataset_id": dataset["id"], "standardize": True},
            "optimizer": {"name": "Adam", "lr": 0.01}, "steps": 5, "eval_every": 5}

    posted = client.post("/v1/jobs", json=spec)
    assert posted.status_code == 201, posted.text
    job_id = posted.json()["id"]
    refused = client.delete(f"/v1/datasets/{dataset['id']}")
    execute([job_id], db=db, settings=stack.settings, worker="test")
    done = client.get(f"/v1/jobs/{job_id}").json()
    deleted = client.delete(f"/v1/datasets/{dataset['id']}")

    assert refused.status_code == 409
    assert done["status"] == "succeeded", done["error"]
    assert done["summary"]["loss"] == "mse"  # float targets: regression unless told otherwise
    assert set(done["summary"]["evaluation"]) == {"train_loss_full"}
    assert deleted.status_code == 409  # the finished job keeps it, to be rerun
    assert "1 succeeded" in deleted.json()["detail"]


def test_a_classifier_on_an_uploaded_data_set_uses_its_labels(client: TestClient,
                                                              db: Engine,
                                                              stack: Stack) -> None:
    from optimlab.worker.execution import execute

    dataset = upload(client, IMAGES, filename="images.npz").json()
    spec = {"model": {"kind": "cnn", "channels": [2], "hidden": 4},
            "data": {"kind": "upload", "dataset_id": dataset["id"]}, "loss": "cross_entropy",
            "optimizer": {"name": "SGD", "lr": 0.1}, "steps": 3, "eval_every": 1}

    posted = client.post("/v1/jobs", json=spec)
    assert posted.status_code == 201, posted.text
    execute([posted.json()["id"]], db=db, settings=stack.settings, worker="test")
    done = client.get(f"/v1/jobs/{posted.json()['id']}").json()

    assert done["status"] == "succeeded", done["error"]
    assert "train_accuracy" in done["summary"]["evaluation"]
