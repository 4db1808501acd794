"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from optimlab.service.api.deps import DbDep, DispatcherDep, SettingsDep
from optimlab.service.api.errors import DATABASE_RETRY_SECONDS
from optimlab.service.api.schemas.health import Readiness
from optimlab.service.jobs.readiness import check_readiness

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(db: DbDep, dispatcher: DispatcherDep, settings: SettingsDep) -> JSONResponse:
    """Database and broker reachable (and, where configured, a worker consuming); else 503."""
    found = check_readiness(db=db, dispatcher=dispatcher, settings=settings)
    body = Readiness.model_validate(found, from_attributes=True)
    headers = {} if found.ready else {"Retry-After": str(DATABASE_RETRY_SECONDS)}
    return JSONResponse(status_code=200 if found.ready else 503, content=body.model_dump(),
                        headers=headers)
