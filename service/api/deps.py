"""Typed dependencies: what a route may ask for, all built once in the app's lifespan."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from optimlab.service.jobs import keys
from optimlab.service.jobs.callers import LOCAL, Caller
from optimlab.service.jobs.dispatch import Dispatcher
from optimlab.service.settings import Settings


def get_db(request: Request) -> Engine:
    return request.app.state.db  # type: ignore[no-any-return]


def get_dispatcher(request: Request) -> Dispatcher:
    return request.app.state.dispatcher  # type: ignore[no-any-return]


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


DbDep = Annotated[Engine, Depends(get_db)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]


class Unauthorized(Exception):
    """No key, or one that is unknown or revoked: 401 with ``WWW-Authenticate: Bearer``."""


# auto_error=False: a missing key is refused by get_caller, as JSON like every refusal;
# the scheme is declared in the OpenAPI document so that clients know to send it.
bearer = HTTPBearer(auto_error=False, description="An API key from `optimlab keys create`.")


def get_caller(request: Request,
               credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
               ) -> Caller:
    """Who the request acts for: its key's owner, or the local admin with auth off."""
    settings: Settings = request.app.state.settings
    if settings.auth == "off":
        return LOCAL
    if credentials is None:
        raise Unauthorized("an API key is required: send Authorization: Bearer <key>")
    caller = keys.authenticate(db=request.app.state.db, key=credentials.credentials)
    if caller is None:
        raise Unauthorized("the API key is unknown or revoked")
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]
