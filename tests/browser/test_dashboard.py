"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against a real
embedded stack (`optimlab up`: API and worker), started once for the module.

A screenshot of every page goes to $OPTIMLAB_SCREENSHOTS (default
test-artifacts/screenshots/, git-ignored). Chromium must start: these tests fail, never
skip, without it (`make test` installs it with apt when it is missing).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from playwright.sync_api import (
    BrowserContext,
    Error,
    Page,
    Playwright,
    Route,
    sync_playwright,
)

from tests.processes import free_port, optimlab, running, wait_ready
from tests.seed_table import SEED_SPEC
from tests.stacks import wait_for

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("OPTIMLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
SHOTS = Path(os.environ.get("OPTIMLAB_SCREENSHOTS", ROOT / "test-artifacts" / "screenshots"))
MOMENTUM_SPEC = {**SEED_SPEC, "name": "seed: momentum 0.9",
                 "optimizer": {"name": "SGD", "lr": 0.01, "momentum": 0.9}}

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@dataclass
class Stack:
    url: str
    database: str

    def post(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{self.url}{route}", json=body, timeout=30)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def get(self, route: str, **params: Any) -> Any:
        response = httpx.get(f"{self.url}{route}", params=params, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def finished_job(self, spec: dict[str, Any]) -> str:
        job_id: str = self.post("/v1/jobs", spec)["id"]
        wait_for(lambda: self.get(f"/v1/jobs/{job_id}")["status"] == "succeeded", timeout=60,
                 interval=0.1, what=f"job {job_id} to succeed")
        return job_id


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("dashboard-stack")
    for name in ("data", "home"):
        (base / name).mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPTIMLAB_DATABASE_URL", "OPTIMLAB_BROKER_URL", "OPTIMLAB_DATA_DIR")}
    env.update(HOME=str(base / "home"), OPTIMLAB_FLUSH_SECONDS="0.2", OPTIMLAB_AUTH="off")
    url = f"http://127.0.0.1:{free_port()}"
    process = optimlab("up", "--port", url.rsplit(":", 1)[1], "--data-dir", str(base / "data"),
                       "--gpus", "none", env=env, cwd=base, log=base / "up.log")
    with running(process):
        wait_ready(url, process, base / "up.log")
        yield Stack(url, f"sqlite:///{base / 'data' / 'optimlab.db'}")


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[BrowserContext]:
    profile = tempfile.mkdtemp(prefix="optimlab-chromium-")
    try:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1280, "height": 900})
    except Error as exc:
        pytest.fail(f"Chromium ({CHROMIUM}) did not start; the browser tests need it "
                    f"(`make chromium` installs it): {exc}", pytrace=False)
    yield context
    context.close()


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    page.close()
    assert errors == [], f"the page threw: {errors}"


def screenshot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def chart_data(page: Page, name: str) -> list[list[float | None]]:
    """A chart's data, as uPlot holds it: [xs, ys...], once the chart has drawn it."""
    page.wait_for_selector(f'[data-chart="{name}"][data-ready="true"]', timeout=30_000)
    return page.evaluate("name => window.__optimlab.charts[name].map(a => Array.from(a))",  # type: ignore[no-any-return]
                         name)


def test_the_seed_preset_runs_and_its_chart_holds_the_apis_history(stack: Stack,
                                                                    page: Page) -> None:
    page.goto(f"{stack.url}/")
    screenshot(page, "jobs-empty")
    page.get_by_role("link", name="Submit", exact=True).click()
    page.get_by_role("button", name="The seed example").click()
    screenshot(page, "submit")
    page.get_by_role("button", name="Submit job").click()

    page.wait_for_url("**/jobs/*")
    job_id = page.url.rsplit("/", 1)[1]
    page.locator(".page-head .badge.status-succeeded").wait_for(timeout=60_000)
    page.wait_for_function("() => window.__optimlab.charts['job:loss']?.[0].length === 20")
    steps, values = chart_data(page, "job:loss")
    screenshot(page, "job")

    (loss,) = stack.get(f"/v1/jobs/{job_id}/metrics", names="loss")["series"]
    assert steps == loss["steps"] == list(range(20))
    assert values == loss["values"]  # the chart draws the API's numbers, bit for bit
    assert stack.get(f"/v1/jobs/{job_id}")["spec"]["name"] == "seed: SGD, fixed lr"
    page.goto(f"{stack.url}/jobs")
    page.get_by_role("link", name="seed: SGD, fixed lr").first.wait_for()
    screenshot(page, "jobs")


def test_a_history_fetch_answered_503_is_asked_again_until_the_chart_draws(
        stack: Stack, page: Page) -> None:
    job_id = stack.finished_job(SEED_SPEC)
    answered: list[int] = []

    def database_away_once(route: Route) -> None:
        if not answered:  # as the API answers while its database is away
            answered.append(503)
            route.fulfill(status=503, headers={"Retry-After": "1"}, json={
                "detail": "the database is unavailable", "code": "DATABASE_AWAY"})
        else:
            answered.append(200)
            route.continue_()

    page.route(f"**/v1/jobs/{job_id}/metrics*", database_away_once)
    page.goto(f"{stack.url}/jobs/{job_id}")
    steps, _ = chart_data(page, "job:loss")
    assert steps == list(range(20))
    assert answered[:2] == [503, 200]


def test_dragging_across_a_chart_refetches_that_range_and_a_double_click_resets(
        stack: Stack, page: Page) -> None:
    job_id = stack.finished_job({**SEED_SPEC, "name": "seed: to zoom"})
    page.goto(f"{stack.url}/jobs/{job_id}")
    chart_data(page, "job:loss")
    canvas = page.locator('[data-chart="job:loss"]')
    box = canvas.locator(".u-over").bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.25, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.75, y, steps=5)
    page.mouse.up()

    page.wait_for_function("() => document.querySelector('[data-chart=\"job:loss\"]')"
                           ".dataset.range !== 'all'")
    lo, hi = map(int, canvas.get_attribute("data-range").split(":"))  # type: ignore[union-attr]
    steps, values = chart_data(page, "job:loss")
    (loss,) = stack.get(f"/v1/jobs/{job_id}/metrics", names="loss", from_step=lo,
                        to_step=hi)["series"]
    assert 0 < lo < hi < 19
    assert steps == loss["steps"] == list(range(lo, hi + 1))
    assert values == loss["values"]
    page.get_by_text(f"Steps {lo}–{hi}").wait_for()

    canvas.locator(".u-over").dblclick()
    page.wait_for_function("() => window.__optimlab.charts['job:loss'][0].length === 20")
    assert canvas.get_attribute("data-range") == "all"


def test_wall_time_on_the_x_axis_interpolates_the_recorded_batches(stack: Stack,
                                                                     page: Page) -> None:
    job_id = stack.finished_job({**SEED_SPEC, "name": "seed: wall time"})
    # The worker records wall_time once per stored batch, at the batch's last step.
    (wall,) = stack.get(f"/v1/jobs/{job_id}/metrics", names="wall_time")["series"]
    assert wall["steps"][-1] == 19
    page.goto(f"{stack.url}/jobs/{job_id}?x=wall")

    page.wait_for_function("() => window.__optimlab.charts['job:loss']?.[0].length === 20")
    xs, _ = chart_data(page, "job:loss")
    # every step between two recorded ones interpolated; time 0 just before step 0
    expected = np.interp(range(20), [-1, *wall["steps"]], [0.0, *wall["values"]])
    assert xs == pytest.approx(expected.tolist())
    assert xs[-1] == pytest.approx(wall["values"][-1])
    assert page.get_by_role("radio", name="wall time").is_checked()


def test_the_job_page_shows_the_workers_lines_and_process_and_reruns_and_deletes(
        stack: Stack, page: Page) -> None:
    # A scalar parameter against a one-element target: torch's mse_loss warns about the
    # broadcast, and the worker keeps the warning with the job.
    warns = {**SEED_SPEC, "name": "seed: warns",
             "model": {**SEED_SPEC["model"], "parameters": {"x": 1.0}}}
    job_id = stack.finished_job(warns)
    page.goto(f"{stack.url}/jobs/{job_id}")

    messages = page.locator("table.logs td.message")
    messages.first.wait_for()
    texts = messages.all_text_contents()
    assert any("target size" in t for t in texts), texts
    assert any("ends succeeded" in t for t in texts), texts
    assert page.get_by_text("peak memory (RSS)").is_visible()
    screenshot(page, "job-logs")

    page.get_by_role("button", name="Rerun").click()
    page.wait_for_url(lambda url: url.rsplit("/", 1)[-1] not in (job_id, ""))
    rerun_id = page.url.rsplit("/", 1)[1]
    assert stack.get(f"/v1/jobs/{rerun_id}")["spec"] == stack.get(f"/v1/jobs/{job_id}")["spec"]

    page.goto(f"{stack.url}/jobs/{job_id}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    page.wait_for_url("**/jobs")
    assert httpx.get(f"{stack.url}/v1/jobs/{job_id}", timeout=10).status_code == 404


def test_compare_overlays_the_seed_job_and_a_momentum_job(stack: Stack, page: Page) -> None:
    plain = stack.finished_job({**SEED_SPEC, "name": "seed: plain SGD"})
    momentum = stack.finished_job(MOMENTUM_SPEC)
    page.goto(f"{stack.url}/compare?jobs={plain},{momentum}")

    xs, *curves = chart_data(page, "compare:loss")
    screenshot(page, "compare")

    assert len(curves) == 2
    assert xs == list(range(20))
    legend = page.get_by_role("list", name="Curves").locator("li")
    assert legend.all_text_contents()[0].startswith("momentum=none")
    assert "momentum=0.9" in legend.all_text_contents()[1]
    ranked = page.locator("table.ranking tbody tr")
    assert ranked.count() == 2
    assert "seed: plain SGD" in ranked.first.text_content()  # type: ignore[operator]
    # the selection is the page's URL: it opens the same comparison elsewhere
    assert f"jobs={plain}%2C{momentum}" in page.url or f"jobs={plain},{momentum}" in page.url


def test_a_sweep_page_shows_progress_leaderboard_chart_heatmap_and_fusion(
        stack: Stack, page: Page) -> None:
    sweep = stack.post("/v1/sweeps", {
        "name": "seed: lr x momentum", "base": SEED_SPEC,
        "axes": {"optimizer.lr": [0.001, 0.01], "optimizer.momentum": [0.0, 0.9]}})
    wait_for(lambda: stack.get(f"/v1/sweeps/{sweep['id']}")["status"] == "finished",
             timeout=60, interval=0.2, what="the sweep to finish")
    page.goto(f"{stack.url}/sweeps/{sweep['id']}")

    page.get_by_text("4 of 4 finished").wait_for()
    xs, *lines = chart_data(page, "sweep:metric")
    screenshot(page, "sweep")

    assert xs == [0.001, 0.01]
    assert len(lines) == 2  # one per momentum
    assert page.locator("table.leaderboard tbody tr").count() == 4
    assert page.locator("table.heatmap tbody td").count() == 4
    assert "1 fused task" in page.locator("#fusion-title + p").text_content()  # type: ignore[operator]
    page.goto(f"{stack.url}/sweeps")
    page.get_by_role("link", name="seed: lr x momentum").wait_for()
    screenshot(page, "sweeps")


def test_a_refused_spec_shows_the_apis_error_at_the_field(stack: Stack, page: Page) -> None:
    before = len(stack.get("/v1/jobs", limit=1000)["data"])
    page.goto(f"{stack.url}/submit")
    page.get_by_role("button", name="The seed example").click()
    editor = page.get_by_label("The spec as JSON")
    spec = json.loads(editor.input_value())
    spec["optimizer"]["momentun"] = 0.9  # a typo the API names
    editor.fill(json.dumps(spec, indent=2))
    page.get_by_role("button", name="Submit job").click()

    field = page.locator(".field", has=page.locator('[data-field="optimizer.momentun"]'))
    error = field.locator(".field-error")
    error.wait_for()
    screenshot(page, "submit-error")

    assert "SGD has no keyword 'momentun'" in error.text_content()  # type: ignore[operator]
    assert field.get_by_label("momentun").get_attribute("aria-invalid") == "true"
    assert page.evaluate("document.activeElement.dataset.field") == "optimizer.momentun"
    assert "/submit" in page.url
    assert len(stack.get("/v1/jobs", limit=1000)["data"]) == before  # nothing was stored


def test_a_data_set_uploaded_on_the_submit_page_goes_into_the_spec(
        stack: Stack, page: Page, tmp_path: Path) -> None:
    csv = tmp_path / "line.csv"
    csv.write_text("u,y\n" + "".join(f"{i / 10},{0.2 * i + 1}\n" for i in range(30)))
    page.goto(f"{stack.url}/submit")
    page.get_by_role("button", name="The seed example").click()
    page.get_by_label("kind").nth(1).select_option("upload")  # the data's kind
    page.get_by_label("File (CSV").set_input_files(str(csv))
    page.get_by_label("Target column (CSV)").fill("y")
    page.get_by_role("button", name="Upload", exact=True).click()

    page.get_by_text("Uploaded line.csv: 30 rows, 1 features").wait_for()
    (dataset,) = stack.get("/v1/datasets")["data"]
    spec = json.loads(page.get_by_label("The spec as JSON").input_value())
    assert spec["data"] == {"kind": "upload", "dataset_id": dataset["id"]}
    assert page.locator('[data-field="data.dataset_id"]').input_value() == dataset["id"]


def test_every_control_is_labelled_and_a_narrow_window_does_not_overflow(
        stack: Stack, browser: BrowserContext) -> None:
    page = browser.new_page()
    page.set_viewport_size({"width": 400, "height": 800})
    for path, name in (("/jobs", "jobs-narrow"), ("/submit", "submit-narrow")):
        page.goto(f"{stack.url}{path}")
        page.locator("h1").wait_for()
        page.wait_for_load_state("networkidle")
        unlabelled = page.evaluate("""() => [
            ...document.querySelectorAll('input, select, textarea')]
            .filter(e => !e.labels?.length && !e.getAttribute('aria-label'))
            .map(e => e.outerHTML)""")
        overflow = page.evaluate("document.documentElement.scrollWidth")
        screenshot(page, name)
        assert unlabelled == [], path
        assert overflow <= 400, f"{path} is {overflow} px wide in a 400 px window"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.close()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A second `optimlab up`, with auth required, and a key made with `optimlab keys`."""
    base = tmp_path_factory.mktemp("dashboard-secured")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTIMLAB_")}
    env.update(HOME=str(base), OPTIMLAB_FLUSH_SECONDS="0.2", OPTIMLAB_AUTH="required",
               OPTIMLAB_DATA_DIR=str(base / "data"))
    url = f"http://127.0.0.1:{free_port()}"
    process = optimlab("up", "--port", url.rsplit(":", 1)[1], "--gpus", "none", env=env,
                       cwd=base, log=base / "up.log")
    with running(process):
        wait_ready(url, process, base / "up.log")
        made = subprocess.run([sys.executable, "-m", "optimlab.service.cli", "keys", "create",
                               "--name", "viewer"], env=env, capture_output=True, text=True,
                              timeout=60, check=True)
        yield url, made.stdout.strip()


def test_with_auth_the_dashboard_asks_for_the_key_once_and_streams_with_it(
        secured: tuple[str, str], page: Page) -> None:
    url, key = secured
    headers = {"Authorization": f"Bearer {key}"}
    job = httpx.post(f"{url}/v1/jobs", json={**SEED_SPEC, "name": "keyed", "steps": 50_000_000},
                     headers=headers, timeout=30).json()
    # The page follows the series it found stored: wait for the first points.
    wait_for(lambda: httpx.get(f"{url}/v1/jobs/{job['id']}/series", headers=headers,
                               timeout=30).json()["series"], timeout=60, interval=0.2,
             what="the job's first points")
    streams: list[dict[str, str]] = []
    page.on("request", lambda r: streams.append(r.headers) if r.url.split("?")[0].endswith(
        f"/v1/jobs/{job['id']}/events") else None)
    page.goto(f"{url}/jobs/{job['id']}")
    form = page.get_by_role("dialog", name="API key")
    form.wait_for()
    screenshot(page, "api-key")
    form.get_by_label("Key").fill(key)
    form.get_by_role("button", name="Use this key").click()
    page.get_by_role("heading", name="keyed").wait_for()
    assert page.evaluate("localStorage.getItem('optimlab.apiKey')") == key
    page.locator(".page-head .badge.status-running").wait_for(timeout=60_000)

    def stream_seen() -> list[dict[str, str]]:
        # Playwright's sync API hands over page events only during its own calls: a bare
        # sleep here would never see a request the page made after the last call.
        page.wait_for_timeout(100)
        return streams

    try:
        wait_for(stream_seen, timeout=60, what="the job's event stream to open")
    except AssertionError as exc:  # say what the page showed instead
        shown = page.evaluate("""() => [...document.querySelectorAll('.live-note, [role=alert]')]
            .map(e => e.textContent)""")
        raise AssertionError(f"{exc}; the page showed {shown}") from None
    assert streams[0]["authorization"] == f"Bearer {key}"
    assert key not in "".join(r for r in streams[0].values() if r != streams[0]["authorization"])
    # the stream's status event, not a reload, shows the cancel
    httpx.post(f"{url}/v1/jobs/{job['id']}/cancel", headers=headers, timeout=30)
    page.locator(".page-head .badge.status-cancelled").wait_for(timeout=60_000)
    page.get_by_role("button", name="Forget key").click()
    page.get_by_role("dialog", name="API key").wait_for()
    assert page.evaluate("localStorage.getItem('optimlab.apiKey')") is None
