"""The dashboard as the API serves it, without a browser: index.html at / and at every
page's path, each file it references with the right type, and the presets of its submit
page accepted by the API."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from optimlab.migrations import upgrade
from optimlab.service.api.main import create_app
from optimlab.service.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
STATIC = ROOT / "service" / "api" / "static"
PRESETS = ROOT / "web" / "src" / "presets"
PAGES = ["/", "/jobs", "/jobs/0b5f1c39-0000-4000-8000-000000000000", "/compare?jobs=a,b",
         "/sweeps", "/sweeps/some-id", "/submit"]
TYPES = {".js": ("text/javascript", "application/javascript"), ".css": ("text/css",)}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, database_url=None, broker_url=None,
                        queue_prefix="dashboard-", auth="off")
    upgrade(settings.database)
    with TestClient(create_app(settings)) as client:
        yield client


def referenced_assets(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/assets/[^"]+)"', html)


@pytest.mark.parametrize("path", PAGES)
def test_every_page_path_answers_the_dashboard(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    assert response.text == (STATIC / "index.html").read_text()
    assert '<div id="app">' in response.text


def test_every_file_the_page_references_is_served_with_its_type(client: TestClient) -> None:
    assets = referenced_assets(client.get("/").text)
    assert {Path(a).suffix for a in assets} == {".js", ".css"}
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert response.headers["content-type"].split(";")[0] in TYPES[Path(asset).suffix]
        assert response.content == (STATIC / asset.lstrip("/")).read_bytes()
        assert "immutable" in response.headers["cache-control"]


def test_the_page_needs_nothing_from_elsewhere() -> None:
    html = (STATIC / "index.html").read_text()
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)
    for script in STATIC.glob("assets/*.js"):
        assert "https://cdn" not in script.read_text()


def test_unknown_assets_and_api_paths_are_not_the_page(client: TestClient) -> None:
    assert client.get("/assets/nothing.js").status_code == 404
    assert client.get("/v1/jobs/0b5f1c39-0000-4000-8000-000000000000").status_code == 404
    assert client.get("/elsewhere").status_code == 404


def test_the_pages_are_not_in_the_api_reference(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not {"/", "/jobs", "/submit"} & set(paths)


def presets() -> list[Path]:
    return sorted(PRESETS.glob("*.json"))


def test_the_seed_preset_is_the_seed_example() -> None:
    example = json.loads((ROOT / "examples" / "seed_sgd_fixed_lr.json").read_text())
    assert json.loads((PRESETS / "seed.json").read_text()) == example


@pytest.mark.parametrize("preset", presets(), ids=lambda p: p.stem)
def test_every_preset_is_accepted_by_the_api(client: TestClient, preset: Path) -> None:
    doc: dict[str, Any] = json.loads(preset.read_text())
    route = "/v1/sweeps" if "base" in doc else "/v1/jobs"
    response = client.post(route, json=doc)
    assert response.status_code == 201, response.text
