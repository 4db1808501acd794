"""The dashboard in headless Chromium on long histories: navigation to charts drawn, zoom.

Seeds a throwaway database (SQLite in a temporary folder by default; ``--backend
postgresql`` for a fresh database on ``--postgres``) through ``service/db``, as runs write
it (chunks of 2,000 steps): (a) one job of 1,000,000 steps with loss, lr, grad_norm,
update_norm and param_norm; (b) 100 jobs of 100,000 steps (loss and lr; 50 learning rates
x 2 seeds, so the compare draws 50 seed groups with their bands). Serves it with
``optimlab api`` and, in Chromium (Playwright, ``--headless --no-sandbox ...``), times:

* job page: navigation start to ``performance.mark("charts-drawn")`` (the loss and lr
  charts drawn with the downsampled history), for (a);
* compare: the same for ``/compare?jobs=<the 100 ids>`` (b);
* zoom: a drag across (a)'s loss chart to the redraw of the re-fetched range
  (``window.__optimlab.zooms``: from the selection to the chart's next draw of that range);
* the longest main-thread block, from a PerformanceObserver on ``longtask`` entries
  (tasks over 50 ms; none reported means none over 50 ms);

and, as the peer that ships every point to the browser (what MLflow's metric view does,
mlflow#5779), the same job page with "every point" ticked (``?points=all``: the loss and lr
histories without ``max_points``, 2,000,000 points, drawn by the same uPlot charts), timed
the same way in the same run. Medians of ``--repeats`` navigations (each a fresh page,
the browser's cache of the hashed assets kept as a returning user's) with min-max.
Targets (issue 11, 2-core machine): each page at most 1.5 s, zoom at most 0.3 s, no
main-thread block over 200 ms.
Nothing asserts on timings.

    .venv/bin/python bench/dashboard.py [--repeats 5] [--backend sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from playwright.sync_api import Page, sync_playwright
from sqlalchemy import Engine, update
from support import load_line, positive, postgres_url

from optimlab import migrations
from optimlab.service.db import jobs, metrics
from optimlab.service.db.connection import make_engine
from optimlab.service.db.models import Job, utcnow

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
CHROMIUM = os.environ.get("OPTIMLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
FLUSH_STEPS = 2000  # steps per stored chunk, as a run flushes them
BIG_STEPS = 1_000_000
MANY_JOBS, MANY_STEPS = 100, 100_000
TARGETS = {"job page": 1.5, "compare": 1.5, "zoom": 0.3, "longest task": 0.2}
LONG_TASKS = """
window.__longtasks = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__longtasks.push(e.duration);
}).observe({ type: "longtask", buffered: true });
"""


# --------------------------------------------------------------------------- the data

def spec(name: str, steps: int, lr: float, seed: int) -> dict[str, Any]:
    return {"name": name, "model": {"kind": "expression", "expression": "x**2",
                                    "parameters": {"x": [1.0]}},
            "data": {"kind": "inline", "targets": [16.0]}, "loss": "mse",
            "optimizer": {"name": "SGD", "lr": lr}, "steps": steps, "seed": seed}


def curves(steps: int, seed: int, names: list[str]) -> dict[str, np.ndarray[Any, Any]]:
    """Noisy decays with spikes: series M4 must keep the shape of."""
    rng = np.random.default_rng(seed)
    s = np.arange(steps, dtype=np.float64)
    loss = 10.0 / (1.0 + s / (500.0 + 97 * seed)) * np.exp(rng.normal(0, 0.1, steps))
    loss[rng.integers(0, steps, 20)] *= 30
    out = {"loss": loss, "lr": 0.01 * (1 + np.cos(np.pi * s / steps)) / 2}
    for i, name in enumerate(n for n in names if n not in out):
        out[name] = np.abs(rng.normal(1.0 + i, 0.2, steps)) / (1.0 + s / 10_000)
    return {n: out[n] for n in names}


def add_job(db: Engine, name: str, steps: int, lr: float, seed: int,
            names: list[str]) -> uuid.UUID:
    series = curves(steps, seed, names)
    with db.begin() as conn:
        job = jobs.insert_job(conn, name=name, spec=spec(name, steps, lr, seed), queue="cpu")
        for first in range(0, steps, FLUSH_STEPS):
            last = min(first + FLUSH_STEPS, steps)
            metrics.write_columns(conn, job.id, {n: (range(first, last), v[first:last])
                                                 for n, v in series.items()})
        loss = series["loss"]
        now = utcnow()
        summary = {"steps": steps, "steps_done": steps, "initial_loss": float(loss[0]),
                   "final_loss": float(loss[-1]), "best_loss": float(loss.min()),
                   "best_step": int(loss.argmin()), "outcome": "completed", "device": "cpu"}
        conn.execute(update(Job).where(Job.id == job.id).values(
            status="succeeded", attempt=1, started_at=now - timedelta(minutes=5),
            finished_at=now, summary=summary))
    return job.id


def seed_database(url: str) -> tuple[uuid.UUID, list[uuid.UUID]]:
    migrations.upgrade(url)
    db = make_engine(url)
    started = time.perf_counter()
    big = add_job(db, "one million steps", BIG_STEPS, 0.01, 0,
                  ["loss", "lr", "grad_norm", "update_norm", "param_norm"])
    lrs = np.geomspace(1e-3, 1e-1, MANY_JOBS // 2)
    many = [add_job(db, f"lr {lr:.3g} seed {seed}", MANY_STEPS, float(lr), seed,
                    ["loss", "lr"])
            for lr in lrs for seed in (0, 1)]
    db.dispose()
    points = BIG_STEPS * 5 + MANY_JOBS * MANY_STEPS * 2
    print(f"seeded {points:,} points in {time.perf_counter() - started:.1f} s")
    return big, many


# --------------------------------------------------------------------------- the server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def api_server(database: str, data_dir: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "OPTIMLAB_DATABASE_URL": database, "OPTIMLAB_DATA_DIR": str(data_dir),
           "OPTIMLAB_BROKER_URL": ""}
    log = open(data_dir / "api.log", "wb")  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-m", "optimlab.service.cli", "api", "--port",
                                str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((data_dir / "api.log").read_text()[-2000:])
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


# --------------------------------------------------------------------------- the browser

def drawn_after_navigation(page: Page, url: str) -> tuple[float, float]:
    """(seconds from navigation start to charts-drawn, longest task in seconds)."""
    page.goto(url)
    page.wait_for_function("performance.getEntriesByName('charts-drawn').length > 0",
                           timeout=60_000)
    drawn = page.evaluate("performance.getEntriesByName('charts-drawn')[0].startTime")
    page.wait_for_timeout(300)  # long tasks are reported a little after they end
    return drawn / 1000, longest_task(page)


def api_seconds(page: Page, route: str) -> float:
    """How long the page's slowest request to ``route`` took, start to last byte."""
    return float(page.evaluate("""(route) => Math.max(0, ...performance.getEntriesByType('resource')
        .filter(e => e.name.includes(route)).map(e => e.responseEnd - e.startTime))""",
                               route)) / 1000


def longest_task(page: Page) -> float:
    return float(page.evaluate("Math.max(0, ...window.__longtasks)")) / 1000  # ms


def zoom_once(page: Page, fraction: tuple[float, float]) -> float:
    """Drag across the loss chart over ``fraction`` of its width; seconds to the redraw."""
    before = page.evaluate("window.__optimlab.zooms.length")
    box = page.locator('[data-chart="job:loss"] .u-over').bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * fraction[0], y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * fraction[1], y, steps=4)
    page.mouse.up()
    page.wait_for_function(
        f"window.__optimlab.zooms.length > {before} && "
        f"window.__optimlab.zooms.slice({before}).every(z => z.drawn !== null)", timeout=30_000)
    zooms = page.evaluate(f"window.__optimlab.zooms.slice({before})")
    return float(max(z["drawn"] - z["started"] for z in zooms)) / 1000


def spread(values: list[float]) -> str:
    return (f"{statistics.median(values):7.3f} s  ({min(values):.3f}-{max(values):.3f})")


def measure(base: str, big: uuid.UUID, many: list[uuid.UUID], repeats: int) -> None:
    results: dict[str, list[float]] = {k: [] for k in (
        "job page", "compare", "zoom", "longest task", "peer", "peer task", "job task",
        "compare task", "job api", "compare api")}
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1280, "height": 900})
        context.add_init_script(LONG_TASKS)
        warm = context.new_page()
        warm.goto(f"{base}/jobs")  # the assets in the cache, as for a returning user
        warm.close()
        compare_url = f"{base}/compare?jobs={','.join(map(str, many))}"
        for _ in range(repeats):
            page = context.new_page()
            seconds, task = drawn_after_navigation(page, f"{base}/jobs/{big}")
            results["job page"].append(seconds)
            results["job api"].append(api_seconds(page, "/metrics?names="))
            zooms = [zoom_once(page, (0.3, 0.6)), zoom_once(page, (0.2, 0.4))]
            results["zoom"].extend(zooms)
            results["job task"].append(max(task, longest_task(page)))
            page.close()
            page = context.new_page()
            seconds, task = drawn_after_navigation(page, f"{base}/jobs/{big}?points=all")
            results["peer"].append(seconds)
            results["peer task"].append(task)
            page.close()
            page = context.new_page()
            seconds, task = drawn_after_navigation(page, compare_url)
            results["compare"].append(seconds)
            results["compare api"].append(api_seconds(page, "/v1/compare"))
            results["compare task"].append(task)
            page.close()
        context.close()
    results["longest task"] = results["job task"] + results["compare task"]
    report(results)


def report(results: dict[str, list[float]]) -> None:
    print()
    print(f"{'figure':<14} {'median (min-max)':<28} target")
    for name in ("job page", "compare", "zoom", "longest task"):
        values = results[name]
        figure = max(values) if name == "longest task" else statistics.median(values)
        verdict = "ok" if figure <= TARGETS[name] else "OVER"
        shown = f"{figure:7.3f} s  (max of all pages)" if name == "longest task" else spread(values)
        print(f"{name:<14} {shown:<28} <= {TARGETS[name]} s  {verdict}")
    print(f"{'':<14} of which the API answer: job page {spread(results['job api'])}, "
          f"compare {spread(results['compare api'])}")
    print(f"{'':<14} longest task: job page {max(results['job task']):.3f} s, "
          f"compare {max(results['compare task']):.3f} s")
    peer = statistics.median(results["peer"])
    print(f"{'every point':<14} {spread(results['peer']):<28} the peer: the job page with all "
          f"2,000,000 points; its longest task {max(results['peer task']):.3f} s")
    print(f"\njob page: {peer / statistics.median(results['job page']):.1f}x faster to draw than "
          f"the peer shipping every point")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=positive, default=5)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--postgres", default=POSTGRES_ADMIN)
    args = parser.parse_args()
    print(load_line())
    with tempfile.TemporaryDirectory(prefix="optimlab-bench-") as folder, \
            contextlib.ExitStack() as stack:
        data_dir = Path(folder)
        database = (stack.enter_context(postgres_url(args.postgres))
                    if args.backend == "postgresql" else f"sqlite:///{data_dir / 'bench.db'}")
        big, many = seed_database(database)
        base = stack.enter_context(api_server(database, data_dir))
        print(f"{args.backend}; optimlab api at {base}; {args.repeats} repeats")
        measure(base, big, many, args.repeats)


if __name__ == "__main__":
    main()
