"""The FastAPI application: settings, database, dispatcher, routes, error handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from optimlab.service.api import openapi
from optimlab.service.api.errors import install_error_handlers
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
from optimlab.service.db.connection import make_engine
from optimlab.service.jobs.dispatch import Dispatcher
from optimlab.service.settings import Settings, get_settings
from optimlab.worker.engine.warmup import warm_up


def create_app(settings: Settings | None = None, dispatcher: Dispatcher | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.engine = make_engine(settings.database)
        app.state.dispatcher = dispatcher or _celery_dispatcher(settings)
        warm_up()  # so that the first POST does not pay torch's lazy imports
        yield
        app.state.engine.dispose()

    app = FastAPI(title="optimlab", version="0.1.0", lifespan=lifespan,
                  separate_input_output_schemas=False,
                  description="An optimizer laboratory: PyTorch training jobs over HTTP, "
                              "every step's metrics stored for comparison.")
    app.add_middleware(RequestGuard, settings=settings)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(job_verbs.router)
    app.include_router(metrics.router)
    app.include_router(datasets.router)
    app.include_router(catalog.router)
    app.include_router(compare.router)
    app.include_router(events.router)
    app.include_router(sweeps.router)
    app.include_router(plots.router)
    dashboard.install(app)
    openapi.install(app)
    return app


def _celery_dispatcher(settings: Settings) -> Dispatcher:
    from optimlab.worker.celery_app import CeleryDispatcher, create_celery

    return CeleryDispatcher(create_celery(settings))
