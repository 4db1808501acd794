"""/v1/catalog: what can be run, described from the code (clients build their forms from it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from optimlab.service.api.responses import OrjsonResponse
from optimlab.service.jobs.catalog import describe_catalog

router = APIRouter(prefix="/v1", tags=["catalog"])


class CatalogPublic(BaseModel):
    """What can be run; each entry described as the code describes it."""

    models: list[dict[str, Any]]
    data: list[dict[str, Any]]
    sklearn_datasets: list[str]
    synthetic_generators: list[str]
    losses: list[dict[str, Any]]
    optimizers: list[dict[str, Any]]
    schedulers: list[dict[str, Any]]


@router.get("/catalog", response_class=OrjsonResponse, response_model=None,
            responses={200: {"model": CatalogPublic}})
def get_catalog() -> OrjsonResponse:
    """Models, data kinds and the bundled scikit-learn sets, losses, and every optimizer and
    scheduler of torch with its keywords, defaults and a one-line description."""
    return OrjsonResponse(describe_catalog())
