"""Uploaded data sets: upload (checked before anything is stored), list, get, delete. (The
engine reads them through service/db/dataset_source.py.)"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from pathlib import PurePosixPath

from sqlalchemy import Engine

from optimlab.service.db import datasets
from optimlab.service.db.models import StoredDataset
from optimlab.service.jobs.callers import Caller
from optimlab.service.jobs.ownership import dataset_for
from optimlab.service.settings import Settings
from optimlab.worker.engine.data.uploads import UploadError, parse_upload


class PayloadTooLarge(ValueError):
    """The file is over ``max_upload_bytes``."""


class InvalidUpload(ValueError):
    """The file (or the form field ``field``) cannot be read as a data set."""

    def __init__(self, message: str, *, field: str = "file") -> None:
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}")


class DatasetConflict(RuntimeError):
    """The request does not fit the stored data set."""


class DatasetInUse(DatasetConflict):
    """Jobs (in any state) refer to the data set: it stays, so that they can be rerun."""


def dataset_id(content: bytes, owner: str | None) -> str:
    """The SHA-256 of the bytes; of the owner's name and the bytes for an owned upload, so
    that two owners' copies of one file are two data sets, and an upload tells nobody
    whether someone else holds the same file."""
    if owner is None:
        return hashlib.sha256(content).hexdigest()
    return hashlib.sha256(owner.encode() + b"\0" + content).hexdigest()


def upload_dataset(*, db: Engine, settings: Settings, caller: Caller, content: bytes,
                   filename: str, name: str | None, target: str | None) -> StoredDataset:
    """Check the file, then store it; the same bytes uploaded again give the stored row."""
    if len(content) > settings.max_upload_bytes:
        raise PayloadTooLarge(f"the file is over the limit of {settings.max_upload_bytes} "
                              "bytes")
    for field, text in (("name", name), ("target", target), ("file", filename)):
        if text is not None and "\x00" in text:  # the multipart form's share of RequestGuard
            raise InvalidUpload("text may not contain NUL characters (\\u0000)", field=field)
    filename = PurePosixPath(filename.replace("\\", "/")).name[-255:]
    target = target.strip() if target and target.strip() else None
    try:
        parsed = parse_upload(content, filename=filename, target=target,
                              max_values=settings.max_upload_values,
                              max_columns=settings.max_upload_columns)
    except UploadError as exc:
        raise InvalidUpload(exc.message, field=exc.field) from None
    stored_target = target if parsed.format == "csv" else None
    with db.begin() as conn:
        stored = datasets.insert_dataset(
            conn, id=dataset_id(content, caller.owner), owner=caller.owner,
            name=(name or filename or "upload")[:200], filename=filename,
            format=parsed.format, target=stored_target, rows=parsed.rows,
            features=parsed.features, classes=parsed.classes, content=content)
    if (stored.format, stored.target) != (parsed.format, stored_target):
        raise DatasetConflict(
            f"this file is already stored as data set {stored.id} ({stored.format}, target "
            f"{stored.target!r}); delete that one to store it with target {stored_target!r}")
    return stored


def list_datasets(*, db: Engine, caller: Caller) -> list[StoredDataset]:
    with db.connect() as conn:
        return datasets.list_datasets(conn, owner=caller.scope)


def get_dataset(*, db: Engine, caller: Caller, dataset_id: str) -> StoredDataset:
    with db.connect() as conn:
        return dataset_for(conn, caller, dataset_id)


def delete_dataset(*, db: Engine, caller: Caller, dataset_id: str) -> None:
    """Remove the data set, unless a job in any state refers to it: a finished job keeps
    its data, or it could not be rerun."""
    with db.begin() as conn:
        dataset_for(conn, caller, dataset_id)
        users = datasets.jobs_using(conn, dataset_id)
        if users:
            raise DatasetInUse(f"data set {dataset_id} is used by {len(users)} job(s) "
                               f"({_counted(users)}: {_listed(users)}); delete those jobs "
                               "first (cancel the queued and running ones)")
        datasets.delete_dataset(conn, dataset_id)


def _counted(users: list[tuple[uuid.UUID, str]]) -> str:
    counts = Counter(status for _, status in users)
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def _listed(users: list[tuple[uuid.UUID, str]]) -> str:
    shown = ", ".join(str(job_id) for job_id, _ in users[:5])
    return shown + (f", and {len(users) - 5} more" if len(users) > 5 else "")
