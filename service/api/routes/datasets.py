"""/v1/datasets: upload data set files (CSV or NPZ), list, inspect and delete them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Response, UploadFile

from optimlab.service.api.deps import CallerDep, DbDep, SettingsDep
from optimlab.service.api.schemas.common import ErrorPublic, ValidationErrorPublic
from optimlab.service.api.schemas.datasets import DatasetPublic, DatasetsPublic
from optimlab.service.jobs import datasets

router = APIRouter(prefix="/v1/datasets", tags=["datasets"],
                   responses={422: {"model": ValidationErrorPublic,
                                    "description": "A field is invalid; `message` names it"}})
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "No data set with this id"}}


@router.post("", status_code=201, response_model=DatasetPublic, responses={
    409: {"model": ErrorPublic,
          "description": "The same file is already stored with another target"},
    413: {"model": ErrorPublic, "description": "File over the size limit"},
    422: {"model": ValidationErrorPublic,
          "description": "The file cannot be read as a data set; `message` says why"}})
def upload_dataset(
        response: Response, db: DbDep, caller: CallerDep, settings: SettingsDep,
        file: Annotated[UploadFile, File(
            description="CSV with a header row, or NPZ with arrays X and y")],
        target: Annotated[str | None, Form(
            max_length=200, description="The CSV's target column (required for CSV)")] = None,
        name: Annotated[str | None, Form(
            max_length=200, description="Default: the file name")] = None,
) -> DatasetPublic:
    """Multipart form: `file` (a CSV with a header row, one row per sample, or an NPZ with
    arrays `X` and `y`), `target` (the name of the CSV's target column; every other column
    is a numeric feature) and `name` (default: the file name). The file is checked before it
    is stored; its id is the SHA-256 of its bytes, so uploading the same file again returns
    the stored data set. Jobs use it as `{"kind": "upload", "dataset_id": id}`."""
    content = file.file.read(settings.max_upload_bytes + 1)
    stored = datasets.upload_dataset(db=db, caller=caller, settings=settings,
                                     content=content,
                                     filename=file.filename or "", name=name, target=target)
    response.headers["Location"] = f"/v1/datasets/{stored.id}"
    return DatasetPublic.of(stored)


@router.get("", response_model=DatasetsPublic)
def list_datasets(db: DbDep, caller: CallerDep) -> DatasetsPublic:
    """Every uploaded data set the key may see, newest first."""
    return DatasetsPublic(data=[DatasetPublic.of(d)
                                for d in datasets.list_datasets(db=db, caller=caller)])


@router.get("/{dataset_id}", response_model=DatasetPublic, responses=NOT_FOUND)
def get_dataset(dataset_id: str, db: DbDep, caller: CallerDep) -> DatasetPublic:
    """The data set's description: format, target, rows, features, classes, size."""
    return DatasetPublic.of(datasets.get_dataset(db=db, caller=caller,
                            dataset_id=dataset_id))


@router.delete("/{dataset_id}", status_code=204, response_class=Response, responses={
    **NOT_FOUND,
    409: {"model": ErrorPublic,
          "description": "Jobs (in any state) refer to the data set; `detail` says which"}})
def delete_dataset(dataset_id: str, db: DbDep, caller: CallerDep) -> Response:
    """Remove the data set; refused with 409 while any job, in any state, refers to it (a
    finished job keeps its data so that it can be rerun): delete those jobs first."""
    datasets.delete_dataset(db=db, caller=caller, dataset_id=dataset_id)
    return Response(status_code=204)
