"""Bodies of /v1/datasets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from optimlab.service.api.schemas.common import UtcDatetime

if TYPE_CHECKING:  # the row the use cases return, read by attribute
    from optimlab.service.db.models import StoredDataset


class DatasetPublic(BaseModel):
    """An uploaded data set; jobs use it as ``{"kind": "upload", "dataset_id": id}``."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    filename: str
    format: Literal["csv", "npz"]
    target: str | None
    rows: int
    features: int
    classes: int | None
    size_bytes: int
    created_at: UtcDatetime

    @classmethod
    def of(cls, dataset: StoredDataset) -> DatasetPublic:
        return cls.model_validate(dataset)


class DatasetsPublic(BaseModel):
    data: list[DatasetPublic]
