"""The OpenAPI document states every answer the server gives, including those that come from
outside the routes: the request guard (413 for a body over its limit, 422 for NUL in any
text), FastAPI itself (400 for a body that is not JSON, 422 for a field out of range), the
HTTP server (400 for a header it cannot read).
Generated clients and schemathesis then agree with the server."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

ERROR = {"$ref": "#/components/schemas/ErrorPublic"}
INVALID = {"$ref": "#/components/schemas/ValidationErrorPublic"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def complete(document: dict[str, Any]) -> dict[str, Any]:
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.setdefault("422", _json(
                INVALID, "A parameter is invalid (out of range, or text with NUL); `message` "
                         "names it"))
            if any(p.get("in") == "header" for p in operation.get("parameters", [])):
                # Said by the HTTP server (uvicorn) before the app: a header it cannot read,
                # e.g. a Last-Event-ID that is not ASCII text.
                responses.setdefault("400", {
                    "description": "A header the HTTP server cannot read",
                    "content": {"text/plain": {"schema": {"type": "string"}}}})
            body = operation.get("requestBody")
            if body is None:
                continue
            responses.setdefault("413", _json(ERROR, "The body is over its size limit, or "
                                                     "holds too many values"))
            content = body.get("content", {})
            if "application/json" in content:
                responses.setdefault("400", _json(ERROR, "The body is not valid JSON"))
            elif "multipart/form-data" in content:
                responses.setdefault("400", _json(ERROR, "The body is not valid multipart "
                                                         "form data"))
    return document


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the completed document (built once, then cached)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
