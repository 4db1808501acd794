"""Liveness and readiness."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from sqlalchemy import text
from starlette.responses import JSONResponse

from optimlab.service.api.deps import DispatcherDep, EngineDep, SettingsDep
from optimlab.service.api.errors import DATABASE_RETRY_SECONDS
from optimlab.service.api.schemas import Readiness
from optimlab.service.db import workers

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(engine: EngineDep, dispatcher: DispatcherDep, settings: SettingsDep) -> JSONResponse:
    """Database and broker reachable (and, where configured, a worker consuming); else 503."""
    database = broker = "ok"
    live = 0
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            within = timedelta(seconds=3 * settings.heartbeat_seconds)
            live = len(workers.live_workers(conn, within=within))
    except Exception as exc:
        database = f"unreachable: {type(exc).__name__}"
    try:
        dispatcher.ping(timeout=2.0)
    except Exception as exc:
        broker = f"unreachable: {type(exc).__name__}"
    ready = database == "ok" and broker == "ok" and (live > 0 or not settings.ready_requires_worker)
    body = Readiness(ready=ready, database=database, broker=broker, workers=live)
    headers = {} if ready else {"Retry-After": str(DATABASE_RETRY_SECONDS)}
    return JSONResponse(status_code=200 if ready else 503, content=body.model_dump(),
                        headers=headers)
