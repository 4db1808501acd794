"""Regenerate the pictures in docs/images/ with optimlab itself.

    .venv/bin/python docs/make_images.py

SGD, SGD with momentum and Adam minimise the Rosenbrock function (the specs of
``examples/rosenbrock_*.json``). Everything runs in this process on a throwaway SQLite
database: the jobs are submitted with ``POST /v1/jobs``, trained by the worker's own
``execute`` (the engine writing through the SQL sink), and drawn by
``GET /v1/compare/plot.png`` and ``GET /v1/compare/landscape.png``. No broker, no server.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from fastapi.testclient import TestClient

from optimlab.migrations import upgrade
from optimlab.service.api.main import create_app
from optimlab.service.db.connection import make_engine
from optimlab.service.settings import Settings
from optimlab.worker.execution import execute

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
EXAMPLES = ["rosenbrock_sgd", "rosenbrock_momentum", "rosenbrock_adam"]
PICTURES = {"compare-rosenbrock.png": "/v1/compare/plot.png",
            "landscape-rosenbrock.png": "/v1/compare/landscape.png"}


class Collect:
    """A dispatcher that queues nothing: it keeps the job ids, which are run here."""

    def __init__(self) -> None:
        self.job_ids: list[str] = []

    def dispatch(self, job_id: str, queue: str) -> None:
        self.job_ids.append(job_id)

    def dispatch_fused(self, job_ids: list[str], queue: str) -> None:
        self.job_ids.extend(job_ids)

    def ping(self, timeout: float = 2.0) -> None:
        return None


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data_dir=Path(folder), database_url=None, broker_url=None)
        upgrade(settings.database)
        collected = Collect()
        with TestClient(create_app(settings, dispatcher=collected)) as client:
            for example in EXAMPLES:
                spec = json.loads((ROOT / "examples" / f"{example}.json").read_text())
                client.post("/v1/jobs", json=spec).raise_for_status()
            db = make_engine(settings.database)
            for job_id in collected.job_ids:
                execute([job_id], db=db, settings=settings, worker="make_images")
            db.dispose()
            for job_id in collected.job_ids:
                job = client.get(f"/v1/jobs/{job_id}").json()
                print(f"{job['name']}: {job['status']}, final loss "
                      f"{job['summary']['final_loss']:.3g}")
            for filename, path in PICTURES.items():
                response = client.get(path, params={"jobs": ",".join(collected.job_ids)})
                response.raise_for_status()
                (IMAGES / filename).write_bytes(response.content)
                print(f"wrote {(IMAGES / filename).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
