"""The FastAPI application: settings, database, dispatcher, routes, error handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import Depends, FastAPI

from optimlab.service.api import openapi
from optimlab.service.api.deps import get_caller
from optimlab.service.api.errors import DATABASE_AWAY, install_error_handlers
from optimlab.service.api.limits import RequestGuard
from optimlab.service.api.routes import (
    catalog,
    compare,
    dashboard,
    datasets,
    events,
    health,
    job_verbs,
    jobs,
    metrics,
    plots,
    sweeps,
)
from optimlab.service.api.schemas.common import ErrorPublic
from optimlab.service.db.connection import make_engine
from optimlab.service.jobs import unserved
from optimlab.service.jobs.dispatch import Dispatcher, celery_dispatcher
from optimlab.service.jobs.submit import warm_up
from optimlab.service.settings import Settings, get_settings

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {401: {
    "model": ErrorPublic, "description": "No API key, or an unknown or revoked one (with "
                                         "OPTIMLAB_AUTH=required)"}}


def create_app(settings: Settings | None = None, dispatcher: Dispatcher | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.db = make_engine(settings.database)
        app.state.dispatcher = dispatcher or celery_dispatcher(settings)
        warm_up()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(unserved.watch, app.state.db, app.state.dispatcher, settings)
            yield
            tasks.cancel_scope.cancel()
        app.state.db.dispose()

    app = FastAPI(title="optimlab", version="0.1.0", lifespan=lifespan,
                  separate_input_output_schemas=False,
                  description="An optimizer laboratory: PyTorch training jobs over HTTP, "
                              "every step's metrics stored for comparison.")
    app.add_middleware(RequestGuard, settings=settings)
    install_error_handlers(app)
    app.include_router(health.router)
    # Every /v1 route asks for the caller here, so none can be left open by mistake (a
    # route's own CallerDep is the same dependency: resolved once per request). The
    # caller's key is looked up in the database: every route may answer 503 without it.
    for router in (jobs.router, job_verbs.router, metrics.router, datasets.router,
                   catalog.router, compare.router, events.router, sweeps.router,
                   plots.router):
        app.include_router(router, dependencies=[Depends(get_caller)],
                           responses={**UNAUTHORIZED, **DATABASE_AWAY})
    dashboard.install(app)
    openapi.install(app)
    return app
