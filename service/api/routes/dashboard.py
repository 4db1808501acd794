"""The web dashboard: its index.html at / and at each page's path, its files under /assets.

The files are built from web/ by `make web` and committed in service/api/static, so the
API serves them without Node or a build step (tests/test_web_assets.py
fails when they no longer match web/). The pages route in the browser; every path below
answers the same index.html, and the page reads its path.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, FastAPI
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).resolve().parents[1] / "static"
PAGES = ("/", "/jobs", "/jobs/{job_id}", "/compare", "/sweeps", "/sweeps/{sweep_id}", "/submit")
# Built file names carry a hash of their content: a browser may keep them for good.
IMMUTABLE = "public, max-age=31536000, immutable"

router = APIRouter(include_in_schema=False)


def index() -> Response:
    page = STATIC / "index.html"
    if not page.is_file():
        return PlainTextResponse("The dashboard is not built: run `make web`.", status_code=503)
    # no-cache: revalidate, so that a new build's asset names are seen at once
    return FileResponse(page, media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})


for _path in PAGES:
    router.add_api_route(_path, index, methods=["GET", "HEAD"])


class Assets(StaticFiles):
    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result,
                      scope: Scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = IMMUTABLE
        return response


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/assets", Assets(directory=STATIC / "assets", check_dir=False), name="assets")
