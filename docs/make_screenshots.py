"""Regenerate docs/images/dashboard.png, the README's picture of the dashboard.

    .venv/bin/python docs/make_screenshots.py

Starts the embedded stack (`optimlab up` on a free port, a throwaway data folder and
HOME), runs the seed example (examples/seed_sgd_fixed_lr.json) with plain SGD, with
momentum 0.9 and with Adam (lr 0.3), and photographs their comparison in the dashboard in
headless Chromium (Playwright driving /usr/bin/chromium, or $OPTIMLAB_CHROMIUM).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "docs" / "images" / "dashboard.png"
CHROMIUM = os.environ.get("OPTIMLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def variants() -> list[dict[str, Any]]:
    seed = json.loads((ROOT / "examples" / "seed_sgd_fixed_lr.json").read_text())
    return [seed,
            {**seed, "name": "seed: SGD, momentum 0.9",
             "optimizer": {"name": "SGD", "lr": 0.01, "momentum": 0.9}},
            {**seed, "name": "seed: Adam, lr 0.3", "optimizer": {"name": "Adam", "lr": 0.3}}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def embedded_stack(folder: Path) -> Iterator[str]:
    port = free_port()
    (folder / "home").mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPTIMLAB_DATABASE_URL", "OPTIMLAB_BROKER_URL", "OPTIMLAB_DATA_DIR")}
    env["HOME"] = str(folder / "home")
    log = open(folder / "up.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "optimlab.service.cli", "up", "--port", str(port), "--data-dir",
         str(folder / "data"), "--gpus", "none"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait(lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, "the stack", 90,
             process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def wait(check: Any, what: str, timeout: float, process: subprocess.Popen[bytes] | None = None
         ) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if check():
                return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"optimlab up exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.2)


def run_jobs(url: str) -> list[str]:
    ids = []
    for spec in variants():
        response = httpx.post(f"{url}/v1/jobs", json=spec, timeout=30)
        response.raise_for_status()
        ids.append(response.json()["id"])
    for job_id in ids:
        wait(lambda j=job_id: httpx.get(f"{url}/v1/jobs/{j}").json()["status"] == "succeeded",
             f"job {job_id}", 120)
    return ids


def photograph(url: str, ids: list[str]) -> None:
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1200, "height": 1000}, device_scale_factor=1)
        page = context.new_page()
        page.goto(f"{url}/compare?jobs={','.join(ids)}")
        page.wait_for_selector('[data-chart="compare:loss"][data-ready="true"]')
        page.locator("table.ranking").wait_for()
        IMAGE.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(IMAGE), full_page=True)
        context.close()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="optimlab-screenshots-") as folder, \
            embedded_stack(Path(folder)) as url:
        photograph(url, run_jobs(url))
    print(f"wrote {IMAGE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
