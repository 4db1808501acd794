"""Render the OpenAPI document as the Markdown of docs/api.md (`make docs` writes it;
a test keeps the file in sync with the code)."""

from __future__ import annotations

import sys
from typing import Any

METHODS = ("get", "post", "put", "patch", "delete")


def render(openapi: dict[str, Any]) -> str:
    lines = [
        "# optimlab HTTP API",
        "",
        "Generated from the OpenAPI document by `make docs` (served live at `/docs` and",
        "`/openapi.json`). Errors are JSON: `{\"detail\": ...}`; a `422` also carries",
        "`message`, one line naming each offending field, e.g. `optimizer.momentun: SGD has no",
        "keyword 'momentun'; ...`.",
        "",
        "The web dashboard is served at `/` and at its pages' paths (`/jobs`, `/jobs/{id}`,",
        "`/compare`, `/sweeps`, `/sweeps/{id}`, `/submit`), its files under `/assets/`; it calls",
        "the routes below and nothing else.",
        "",
        "Every `/v1` route needs `Authorization: Bearer <key>` (a key from `optimlab keys",
        "create`) unless the server runs with `OPTIMLAB_AUTH=off`; without a valid key it answers",
        "`401` with `WWW-Authenticate: Bearer`. Jobs, sweeps and data sets belong to the key's",
        "owner: another owner's id answers `404` and lists leave it out (an admin key sees all).",
        "Past an owner's quota a submission answers `429` (running or queued jobs) or `403`",
        "(stored points), with `quota` and `limit` in the body. `/healthz`, `/readyz` and the",
        "dashboard are public.",
        "",
    ]
    for path, operations in openapi["paths"].items():
        for method in METHODS:
            if method in operations:
                lines += _operation(method, path, operations[method])
    lines += _schemas(openapi["components"]["schemas"])
    return "\n".join(lines).rstrip() + "\n"


def _operation(method: str, path: str, operation: dict[str, Any]) -> list[str]:
    lines = [f"## `{method.upper()} {path}`", ""]
    description = operation.get("description") or operation.get("summary", "")
    if description:
        lines += [description.strip(), ""]
    parameters = operation.get("parameters", [])
    if parameters:
        lines += ["| parameter | in | type | required | description |", "|---|---|---|---|---|"]
        lines += [f"| `{p['name']}` | {p['in']} | {_type(p.get('schema', {}))} | "
                  f"{'yes' if p.get('required') else 'no'} | {p.get('description', '')} |"
                  for p in parameters]
        lines.append("")
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if body:
        lines += [f"Body: {_type(body['schema'])}", ""]
    responses = ", ".join(
        f"`{code}`" + (f" {_type(r['content']['application/json']['schema'])}"
                       if "application/json" in r.get("content", {}) else "")
        for code, r in operation.get("responses", {}).items())
    lines += [f"Responses: {responses}", ""]
    return lines


def _schemas(schemas: dict[str, Any]) -> list[str]:
    lines = ["## Schemas", ""]
    for name, schema in schemas.items():
        if name in ("HTTPValidationError", "ValidationError") or "properties" not in schema:
            continue
        lines += [f"### {name}", ""]
        if schema.get("description"):
            lines += [schema["description"].strip(), ""]
        required = set(schema.get("required", []))
        lines += ["| field | type | required | default |", "|---|---|---|---|"]
        for field, spec in schema["properties"].items():
            default = f"`{spec['default']!r}`" if "default" in spec else ""
            lines.append(f"| `{field}` | {_type(spec)} | {'yes' if field in required else 'no'} "
                         f"| {default} |")
        if schema.get("additionalProperties") is True:
            lines.append("| *(any other key)* | keyword argument of the named class | no | |")
        lines.append("")
    return lines


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return f"[{schema['$ref'].rsplit('/', 1)[1]}](#{schema['$ref'].rsplit('/', 1)[1].lower()})"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(_type(s) for s in schema[key])
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_type(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema:
        values = schema["additionalProperties"]
        return f"object of {_type(values) if isinstance(values, dict) else 'any'}"
    return str(kind)


def main() -> None:
    from optimlab.service.api.main import create_app

    sys.stdout.write(render(create_app().openapi()))


if __name__ == "__main__":
    main()
