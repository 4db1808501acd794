"""The client's commands of ``optimlab``, run as a user runs them, against the shared stack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml
from PIL import Image

from optimlab.client import Client
from tests.client.conftest import LONG_SPEC, Server
from tests.processes import free_port
from tests.seed_table import SEED_SPEC
from tests.stacks import wait_for


def text(output: bytes) -> str:
    """Rich's output as plain words (it may wrap a long message)."""
    return " ".join(output.decode().split())


def spec_file(folder: Path, spec: dict[str, Any], name: str = "spec.json") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(spec) if name.endswith((".yaml", ".yml"))
                    else json.dumps(spec))
    return path


def test_help_lists_the_client_commands_and_the_exit_codes_without_importing_httpx(
        server: Server) -> None:
    result = server.cli("--help")
    imported = subprocess.run(
        [sys.executable, "-c", "import sys, optimlab.service.cli; "
         "print(sorted(m for m in ('httpx', 'rich.progress', 'yaml') if m in sys.modules))"],
        capture_output=True, text=True, check=True)

    assert result.returncode == 0
    for command in ("submit", "jobs", "show", "history", "compare", "sweep", "cancel"):
        assert command in result.stdout.decode()
    assert "Exit codes: 0 succeeded; 1 a job failed" in text(result.stdout)
    assert imported.stdout.strip() == "[]"


def test_submit_wait_shows_progress_then_the_summary(server: Server, tmp_path: Path) -> None:
    spec = spec_file(tmp_path, {**SEED_SPEC, "name": "cli seed"}, "seed.yaml")

    result = server.cli("submit", str(spec), "--wait")

    assert result.returncode == 0, result.stderr.decode()
    job_id = result.stdout.decode().splitlines()[0]
    out, err = text(result.stdout), text(result.stderr)
    assert "succeeded" in err
    assert "20/20" in err
    assert "loss 0" in err
    assert f"id {job_id}" in out
    assert "status succeeded" in out
    assert "outcome completed" in out
    assert "initial_loss 225" in out
    assert "final_loss 0" in out
    assert "best_step 14" in out


def test_submit_without_wait_prints_the_id_and_the_server_comes_from_the_option(
        server: Server, tmp_path: Path) -> None:
    env = {k: v for k, v in server.env().items() if k != "OPTIMLAB_SERVER"}
    result = server.cli("submit", str(spec_file(tmp_path, SEED_SPEC)), "--server", server.url,
                        env=env)

    assert result.returncode == 0, result.stderr.decode()
    (job_id,) = result.stdout.decode().split()
    assert httpx.get(f"{server.url}/v1/jobs/{job_id}").status_code == 200


def test_a_refused_spec_exits_2_naming_the_field(server: Server, tmp_path: Path) -> None:
    spec = spec_file(tmp_path, {**SEED_SPEC, "optimizer": {"name": "SGD", "lr": 0.01,
                                                           "momentun": 0.9}})

    result = server.cli("submit", str(spec), "--wait")

    assert result.returncode == 2
    assert result.stdout == b""
    err = result.stderr.decode()
    assert "optimizer.momentun: SGD has no keyword 'momentun'" in err
    assert "field: optimizer.momentun" in err


def test_a_spec_file_that_cannot_be_read_exits_2(server: Server, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")

    result = server.cli("submit", str(broken))

    assert result.returncode == 2
    assert "broken.json: not JSON" in text(result.stderr)


def test_a_diverged_run_exits_3_only_when_asked(server: Server, tmp_path: Path) -> None:
    spec = spec_file(tmp_path, {**SEED_SPEC, "optimizer": {"name": "SGD", "lr": 1.0}})

    plain = server.cli("submit", str(spec), "--wait")
    strict = server.cli("submit", str(spec), "--wait", "--fail-on-diverged")

    assert plain.returncode == 0, plain.stderr.decode()
    assert "outcome diverged" in text(plain.stdout)
    assert strict.returncode == 3


def test_a_job_cancelled_while_waited_for_exits_1(server: Server, tmp_path: Path) -> None:
    spec = spec_file(tmp_path, LONG_SPEC)
    waiting = subprocess.Popen([sys.executable, "-m", "optimlab.service.cli", "submit",
                                str(spec), "--wait"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=server.env())
    try:
        assert waiting.stdout is not None
        job_id = waiting.stdout.readline().decode().strip()
        with server.client() as client:
            wait_for(lambda: client.job(job_id)["status"] == "running", timeout=60,
                     interval=0.1, what="the job to run")
            cancelled = server.cli("cancel", job_id)
        out, _err = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.send_signal(signal.SIGKILL)
            waiting.wait()

    assert cancelled.returncode == 0
    assert cancelled.stdout.decode().strip() == f"job {job_id}: cancelled"
    assert waiting.returncode == 1
    assert "outcome cancelled" in text(out)
    again = server.cli("cancel", job_id)
    assert again.returncode == 2  # 409: it is over
    assert "error:" in again.stderr.decode()


def test_jobs_lists_a_table_with_the_filters(server: Server, client: Client) -> None:
    tag = f"cli-{uuid.uuid4().hex[:8]}"
    ids = [client.submit({**SEED_SPEC, "tags": [tag], "name": f"listed {i}"})["id"]
           for i in range(3)]

    table = server.cli("jobs", "--tag", tag, "--optimizer", "SGD", "--limit", "2")
    as_json = server.cli("jobs", "--tag", tag, "--json")
    quiet = server.cli("jobs", "--tag", tag, "-q", "--sort", "-created_at")
    refused = server.cli("jobs", "--sort", "no_such_field")

    assert table.returncode == 0, table.stderr.decode()
    header, *rows = table.stdout.decode().splitlines()
    assert header.split()[:4] == ["id", "name", "status", "optimizer"]
    assert [row.split()[0] for row in rows] == ids[::-1][:2]  # newest first
    assert [job["id"] for job in json.loads(as_json.stdout)] == ids[::-1]
    assert quiet.stdout.decode().split() == ids[::-1]
    assert refused.returncode == 2
    assert "sort: cannot sort by 'no_such_field'" in text(refused.stderr)


def test_show_prints_the_job_and_refuses_an_unknown_id(server: Server,
                                                       seed_job: dict[str, Any]) -> None:
    shown = server.cli("show", seed_job["id"], "--spec")
    as_json = server.cli("show", seed_job["id"], "--json")
    unknown = server.cli("show", str(uuid.uuid4()))

    assert shown.returncode == 0, shown.stderr.decode()
    assert f"id {seed_job['id']}" in text(shown.stdout)
    assert "steps_done 20" in text(shown.stdout)
    assert '"expression": "x**2"' in shown.stdout.decode()
    assert json.loads(as_json.stdout) == seed_job
    assert unknown.returncode == 2
    assert "error:" in unknown.stderr.decode()


def test_history_csv_is_the_apis_csv_byte_for_byte(server: Server,
                                                   seed_job: dict[str, Any]) -> None:
    url = f"{server.url}/v1/jobs/{seed_job['id']}/metrics.csv"

    everything = server.cli("history", seed_job["id"], "--csv")
    some = server.cli("history", seed_job["id"], "--csv", "--names", "loss,param.x",
                      "--max-points", "8", "--smoothing", "0.5")

    assert everything.returncode == some.returncode == 0
    assert everything.stdout == httpx.get(url).content
    assert some.stdout == httpx.get(url, params={"names": "loss,param.x", "max_points": 8,
                                                 "smoothing": 0.5}).content
    assert some.stdout.startswith(b"step,name,value,smoothed\n")


def test_history_prints_a_table_of_steps_by_series(server: Server,
                                                   seed_job: dict[str, Any]) -> None:
    result = server.cli("history", seed_job["id"], "--names", "param.x,loss")

    assert result.returncode == 0, result.stderr.decode()
    header, *rows = result.stdout.decode().splitlines()
    assert header.split() == ["step", "param.x", "loss"]
    assert len(rows) == 20
    assert rows[0].split() == ["0", "1.600000023841858", "225.0"]


def test_compare_ranks_and_plots_a_png_that_decodes(server: Server, client: Client,
                                                    seed_job: dict[str, Any],
                                                    tmp_path: Path) -> None:
    adam = client.submit({**SEED_SPEC, "optimizer": {"name": "Adam", "lr": 0.5}})
    client.wait(adam["id"], timeout=120)
    plot = tmp_path / "out.png"

    result = server.cli("compare", seed_job["id"], adam["id"], "--metric", "loss",
                        "--rank-by", "best_loss", "--plot", str(plot))

    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert seed_job["id"] in out
    assert adam["id"] in out
    assert "optimizer.name=Adam" in text(result.stdout)
    with Image.open(plot) as image:
        image.load()  # decodes every pixel
        assert image.format == "PNG"
        width, height = image.size
    assert width > 100
    assert height > 100


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_sweep_wait_on_the_example_prints_the_leaderboard(server: Server) -> None:
    # its base is a spec file beside it: examples/seed_sgd_fixed_lr.json
    result = server.cli("sweep", str(EXAMPLES / "seed_lr_momentum_sweep.yaml"), "--wait",
                        "--rank-by", "best_loss", "--top", "3")

    assert result.returncode == 0, result.stderr.decode()
    sweep_id, summary, header, *rows = result.stdout.decode().splitlines()
    assert "9/9" in result.stderr.decode()
    assert summary == f"sweep {sweep_id} (seed: lr x momentum): 9 jobs, 9 succeeded"
    assert header.split() == ["rank", "job", "status", "point", "seed", "best_loss",
                              "outcome"]
    assert len(rows) == 3
    with Client(server.url) as client:
        sweep = client.sweep_status(sweep_id)
    assert sweep["request"]["base"]["name"] == "seed: SGD, fixed lr"


def test_an_unreachable_server_exits_4(tmp_path: Path) -> None:
    env = {**os.environ, "OPTIMLAB_SERVER": f"http://127.0.0.1:{free_port()}"}

    result = subprocess.run([sys.executable, "-m", "optimlab.service.cli", "submit",
                             str(spec_file(tmp_path, SEED_SPEC))],
                            capture_output=True, env=env, timeout=60, check=False)

    assert result.returncode == 4
    assert "cannot reach the optimlab server" in text(result.stderr)
