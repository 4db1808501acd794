"""/v1/catalog: what can be run, described from the code (clients build their forms from it)."""

from __future__ import annotations

import functools
from typing import Any

from fastapi import APIRouter

from optimlab.service.api.responses import OrjsonResponse
from optimlab.worker.engine.catalog import catalog

router = APIRouter(prefix="/v1", tags=["catalog"])


@functools.cache
def _catalog() -> dict[str, Any]:
    return catalog()


@router.get("/catalog", response_class=OrjsonResponse)
def get_catalog() -> OrjsonResponse:
    """Models, data kinds and the bundled scikit-learn sets, losses, and every optimizer and
    scheduler of torch with its keywords, defaults and a one-line description."""
    return OrjsonResponse(_catalog())
