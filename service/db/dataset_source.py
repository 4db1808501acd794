"""The engine's :class:`DatasetSource` for uploads stored in the database: what a worker
reads a job's data set through, and what a submit checks a spec's data set with."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine

from optimlab.service.db import datasets
from optimlab.worker.engine.data.dataset import Dataset
from optimlab.worker.engine.data.uploads import UploadError, load_upload
from optimlab.worker.spec_errors import SpecError


class SqlDatasetSource:
    """``sees``: whether the reader may see a data set of that owner (a spec being
    submitted: another owner's data set is unknown, as an id that names none); None (a
    worker running a job checked at submit): any is read."""

    def __init__(self, db: Engine, sees: Callable[[str | None], bool] | None = None
                 ) -> None:
        self.db = db
        self.sees = sees

    def load(self, dataset_id: str) -> Dataset:
        with self.db.connect() as conn:
            stored = datasets.get_dataset(conn, dataset_id)
            if stored is not None and self.sees is not None and not self.sees(stored.owner):
                stored = None
            content = None if stored is None else datasets.get_content(conn, dataset_id)
        if stored is None or content is None:
            raise SpecError(("data", "dataset_id"), f"no uploaded data set {dataset_id}")
        try:
            return load_upload(content, stored.format, stored.target)
        except UploadError as exc:
            raise SpecError(("data", "dataset_id"),
                            f"uploaded data set {dataset_id} cannot be read: {exc.message}"
                            ) from None
