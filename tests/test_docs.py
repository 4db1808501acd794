"""docs/api.md is the rendering of the live OpenAPI document: regenerate it with `make docs`."""

from __future__ import annotations

from pathlib import Path

from optimlab.service.api.main import create_app
from optimlab.service.api.reference import render

ROOT = Path(__file__).resolve().parents[1]


def test_api_reference_is_in_sync_with_the_code() -> None:
    current = (ROOT / "docs" / "api.md").read_text()
    assert current == render(create_app().openapi()), "docs/api.md is stale: run `make docs`"


def test_the_reference_names_every_route() -> None:
    openapi = create_app().openapi()
    text = render(openapi)
    for path, operations in openapi["paths"].items():
        for method in operations:
            assert f"`{method.upper()} {path}`" in text
