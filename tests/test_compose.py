"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

No Docker engine runs where the suite runs, so the compose file is checked in two ways:

* its structure (services, healthchecks, dependencies, profiles, volumes), read with PyYAML;
* its behaviour: each app service's own ``command`` is started here, as the image's
  ``ENTRYPOINT ["optimlab"]`` would run it, with the service's own ``environment``
  (pointed at the local PostgreSQL and Redis instead of the ``postgres`` and ``redis``
  hosts), and the service's own healthcheck command is run here to say when it is up.

The Dockerfile's build context is checked by copying what its COPY lines take through the
.dockerignore rules and building the wheel from that copy. Whether the images really
build (base image, torch wheels from TORCH_INDEX) can only be checked with Docker.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil
import psycopg
import pytest
import redis
import torch
import yaml

from tests.processes import free_port
from tests.seed_table import SEED_SPEC
from tests.stacks import wait_for

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

SERVICES = {"postgres", "redis", "migrate", "api", "worker", "worker-gpu"}
APP_SERVICES = ("migrate", "api", "worker", "worker-gpu")
TABLES = {"alembic_version", "jobs", "metric_chunks", "workers"}
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
STOP_GRACE_SECONDS = 15.0


def load_compose() -> dict[str, Any]:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(compose, dict), "docker-compose.yml is not a mapping"
    return compose


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    services = compose["services"]
    assert name in services, f"docker-compose.yml has no service {name!r}"
    config = services[name]
    assert isinstance(config, dict), f"service {name!r} is not a mapping"
    return config


def environment(config: dict[str, Any]) -> dict[str, str]:
    """A service's ``environment``, in either of compose's two spellings."""
    env = config.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(key): str(value) for key, value in env.items()}


def seconds(duration: str) -> float:
    """A compose duration such as ``10s``, ``1m30s`` or ``500ms``."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|s|m|h)", duration)
    assert "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    assert parts, f"bad duration {duration!r}"
    unit = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(number) * unit[suffix] for number, suffix in parts)


def healthcheck_argv(config: dict[str, Any]) -> list[str]:
    """The healthcheck's ``test`` as a command line for this machine."""
    test = config["healthcheck"]["test"]
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    kind, *args = test
    if kind == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(args)]
    assert kind == "CMD", f"unexpected healthcheck form {kind!r}"
    assert args, "empty healthcheck command"
    # The image's python is the one optimlab is installed in; here that is this venv's.
    return [sys.executable, *args[1:]] if args[0] == "python" else list(args)


# --- structure ---------------------------------------------------------------------------


def test_compose_file_declares_the_services_and_how_they_depend_on_each_other() -> None:
    compose = load_compose()
    assert set(compose["services"]) == SERVICES

    for name in ("postgres", "redis", "api", "worker", "worker-gpu"):
        test = service(compose, name).get("healthcheck", {}).get("test")
        assert test, f"{name} has no healthcheck"
        assert test[0] in ("CMD", "CMD-SHELL"), f"{name}: healthcheck test {test!r}"
    assert service(compose, "postgres")["healthcheck"]["test"][1] == "pg_isready"
    assert service(compose, "redis")["healthcheck"]["test"][1:] == ["redis-cli", "ping"]
    assert "/readyz" in " ".join(service(compose, "api")["healthcheck"]["test"])

    # The app services run the image built from this repository, all the same way.
    for name in APP_SERVICES:
        config = service(compose, name)
        build = config.get("build")
        assert build, f"{name} does not build the image"
        context = build if isinstance(build, str) else build["context"]
        assert (COMPOSE_FILE.parent / context / "Dockerfile").resolve() == DOCKERFILE
        assert "entrypoint" not in config, f"{name} overrides the image's ENTRYPOINT"
        assert isinstance(config["command"], list), f"{name}: command is not exec form"
    assert service(compose, "migrate")["command"] == ["migrate"]
    assert service(compose, "migrate").get("restart") == "no", "migrate must be one-shot"
    assert service(compose, "worker")["command"] == ["worker", "--gpus", "none"]
    assert service(compose, "worker-gpu")["command"] == ["worker", "--gpus", "all"]

    def condition(name: str, on: str) -> str:
        depends = service(compose, name).get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        assert on in depends, f"{name} does not depend on {on}"
        return str(depends[on]["condition"])

    assert condition("migrate", "postgres") == "service_healthy"
    for name in ("api", "worker", "worker-gpu"):
        assert condition(name, "migrate") == "service_completed_successfully"
        assert condition(name, "redis") == "service_healthy"
    assert service(compose, "api")["ports"] == ["8000:8000"]

    # The CPU worker is the fallback for any machine: it asks for no device.
    assert "deploy" not in service(compose, "worker")
    assert "profiles" not in service(compose, "worker")
    gpu = service(compose, "worker-gpu")
    assert gpu["profiles"] == ["gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]} in devices
    cpu_index = service(compose, "worker")["build"]["args"]["TORCH_INDEX"]
    gpu_index = gpu["build"]["args"]["TORCH_INDEX"]
    assert cpu_index == CPU_TORCH_INDEX
    assert re.fullmatch(r"https://download\.pytorch\.org/whl/cu\d+", gpu_index), gpu_index
    assert service(compose, "worker")["image"] != gpu["image"], "CPU and GPU images collide"

    # Named volumes: every one used is declared at the top level.
    declared = set(compose.get("volumes") or {})
    used = {volume.split(":", 1)[0] for config in compose["services"].values()
            for volume in config.get("volumes", [])}
    assert {"postgres-data", "redis-data"} <= used
    assert used <= declared, f"undeclared volumes: {used - declared}"
    assert "/var/lib/postgresql/data" in {
        v.split(":")[1] for v in service(compose, "postgres")["volumes"]}


def test_app_services_share_one_environment_that_points_at_the_compose_servers() -> None:
    compose = load_compose()
    shared = compose.get("x-optimlab-env")
    assert isinstance(shared, dict), "no x-optimlab-env extension field"
    for name in APP_SERVICES:
        assert environment(service(compose, name)) == {k: str(v) for k, v in shared.items()}

    postgres = environment(service(compose, "postgres"))
    database = urlsplit(shared["OPTIMLAB_DATABASE_URL"])
    assert database.scheme == "postgresql"
    assert (database.hostname, database.port or 5432) == ("postgres", 5432)
    assert database.username == postgres["POSTGRES_USER"]
    assert database.password == postgres["POSTGRES_PASSWORD"]
    assert database.path == "/" + postgres["POSTGRES_DB"]
    assert postgres["POSTGRES_USER"] == postgres["POSTGRES_DB"] == "optimlab"
    pg_isready = service(compose, "postgres")["healthcheck"]["test"]
    assert pg_isready[pg_isready.index("-U") + 1] == postgres["POSTGRES_USER"]
    assert pg_isready[pg_isready.index("-d") + 1] == postgres["POSTGRES_DB"]

    broker = urlsplit(shared["OPTIMLAB_BROKER_URL"])
    assert broker.scheme == "redis"
    assert (broker.hostname, broker.port or 6379) == ("redis", 6379)


FIRST_KEY = re.compile(r"^#\s+docker compose run --rm (\S+) (keys create .*)$", re.MULTILINE)


def first_key_command() -> tuple[str, list[str]]:
    """The service and the arguments the compose file's comment gives for the first key."""
    found = FIRST_KEY.search(COMPOSE_FILE.read_text())
    assert found, "docker-compose.yml does not show how the first API key is made"
    return found[1], found[2].split()


def test_the_api_asks_for_keys_and_the_file_shows_how_the_first_is_made() -> None:
    compose = load_compose()
    assert compose["x-optimlab-env"]["OPTIMLAB_AUTH"] == "required"
    name, args = first_key_command()
    assert name in APP_SERVICES
    assert args[:2] == ["keys", "create"]
    assert "--admin" in args
    assert "--name" in args
    assert f"docker compose run --rm {name} {' '.join(args)}" in (ROOT / "README.md").read_text()


def test_dockerfile_installs_torch_from_the_build_arg_index_then_the_project() -> None:
    text = DOCKERFILE.read_text()
    lines = [line.strip() for line in text.replace("\\\n", " ").splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    instructions = [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]
    assert instructions[0] == ("FROM", "python:3.11-slim")
    assert ("ARG", f"TORCH_INDEX={CPU_TORCH_INDEX}") in instructions
    runs = [args for op, args in instructions if op == "RUN"]
    torch_run = next(i for i, run in enumerate(runs) if "torch" in run)
    assert re.search(r'--index-url "?\$\{?TORCH_INDEX\}?"?', runs[torch_run]), runs[torch_run]
    project_run = next(i for i, run in enumerate(runs) if re.search(r"pip install \.(\s|$)", run))
    assert torch_run < project_run, "torch must be installed before the project"
    env = " ".join(args for op, args in instructions if op == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env
    users = [args for op, args in instructions if op == "USER"]
    assert users, "the image runs as root"
    assert users[-1] not in ("root", "0")
    entrypoint = [json.loads(args) for op, args in instructions if op == "ENTRYPOINT"]
    assert entrypoint == [["optimlab"]]
    cmd = [json.loads(args) for op, args in instructions if op == "CMD"]
    assert cmd == [["api", "--host", "0.0.0.0", "--port", "8000"]]


# --- the image's build context -------------------------------------------------------


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(exclude?, pattern) pairs in the semantics of Docker's .dockerignore."""
    rules = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex, i = regex + pattern[i:end + 1], end + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((not include, re.compile(regex)))
    return rules


def in_context(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether ``path`` (relative, with /) reaches the build context: last matching rule wins;
    a pattern that matches a parent directory matches everything below it."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for exclude, regex in rules:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = exclude
    return not excluded


def test_dockerignore_keeps_the_context_lean() -> None:
    rules = dockerignore_rules()
    for path in (".venv/bin/python", ".git/HEAD", ".optimlab/optimlab.db", "tests/conftest.py",
                 ".mypy_cache/x.json", "service/__pycache__/cli.cpython-311.pyc",
                 "optimlab.egg-info/PKG-INFO", "build/lib/x.py"):
        assert not in_context(path, rules), f"{path} would be sent to the Docker daemon"


def test_build_context_after_dockerignore_installs_the_optimlab_command(tmp_path: Path) -> None:
    """What the Dockerfile COPYs, filtered by .dockerignore, builds the full package."""
    rules = dockerignore_rules()
    context = tmp_path / "context"
    copies = [line.split()[1:] for line in DOCKERFILE.read_text().splitlines()
              if line.startswith("COPY ")]
    assert copies, "the Dockerfile copies nothing"
    for *sources, destination in copies:
        assert not any(s.startswith("--") for s in sources), f"unexpected COPY flags {sources}"
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
            files = [ROOT / source] if (ROOT / source).is_file() else \
                sorted(p for p in (ROOT / source).rglob("*") if p.is_file())
            files = [f for f in files if in_context(f.relative_to(ROOT).as_posix(), rules)]
            # A COPY whose source .dockerignore leaves out fails the build ("not found").
            assert files, f"COPY {source}: .dockerignore leaves nothing of it in the context"
            for file in files:
                if (ROOT / source).is_file():
                    target = context / destination / file.name
                else:
                    target = context / destination / file.relative_to(ROOT / source)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, target)
    assert not list(context.rglob("__pycache__")), "byte code reaches the image"

    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "--wheel-dir", str(wheels), str(context)],
        capture_output=True, text=True, timeout=240, check=False)
    assert built.returncode == 0, f"pip wheel failed:\n{built.stdout[-3000:]}{built.stderr}"
    (wheel,) = wheels.glob("optimlab-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names
                            if n.endswith(".dist-info/entry_points.txt"))
        metadata = next(archive.read(n).decode() for n in names
                        if n.endswith(".dist-info/METADATA"))
    readme = (ROOT / "README.md").read_text().strip()
    assert readme in metadata, "the package description (README.md) is missing"
    assert re.search(r"^optimlab = optimlab\.service\.cli:main$", entry_points, re.M), \
        entry_points
    for folder in ("service", "worker", "migrations"):
        for file in (ROOT / folder).rglob("*"):
            if file.suffix in (".py", ".mako") and "__pycache__" not in file.parts:
                name = f"optimlab/{folder}/{file.relative_to(ROOT / folder).as_posix()}"
                assert name in names, f"{name} is missing from the image's package"


# --- the datastores' healthchecks ------------------------------------------------------


@pytest.mark.parametrize("name", ["postgres", "redis"])
def test_datastore_healthchecks_run_here(name: str, request: pytest.FixtureRequest) -> None:
    """The compose healthcheck command, run against the local server (``-h``/``-p`` added:
    in the container it talks to its own server on the default socket)."""
    server = urlsplit(request.getfixturevalue(
        "postgres_server" if name == "postgres" else "redis_url"))
    test = service(load_compose(), name)["healthcheck"]["test"]
    assert test[0] == "CMD"
    tool, *args = test[1:]
    # The CI machine has both servers' client tools (.ci/run uses them too): missing is a failure.
    assert shutil.which(tool) is not None, f"{tool} is not installed here"

    def run(port: int) -> int:
        argv = [tool, "-h", server.hostname or "127.0.0.1", "-p", str(port), *args]
        return subprocess.run(argv, capture_output=True, timeout=10, check=False).returncode

    assert run(server.port or (5432 if name == "postgres" else 6379)) == 0
    assert run(free_port()) != 0, f"the {name} healthcheck passes with no server"


# --- the app services, started here ------------------------------------------------------


@dataclass
class Local:
    """The compose services' world on this machine: a test database, queues of its own."""

    database_url: str
    broker_netloc: str
    prefix: str
    base_env: dict[str, str]
    cwd: Path
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]]

    def env(self, config: dict[str, Any]) -> dict[str, str]:
        """The service's compose ``environment``, aimed at the local servers."""
        env = {**self.base_env, **environment(config)}
        database = urlsplit(env["OPTIMLAB_DATABASE_URL"])
        assert database.hostname == "postgres", database
        broker = urlsplit(env["OPTIMLAB_BROKER_URL"])
        assert broker.hostname == "redis", broker
        env.update({
            "OPTIMLAB_DATABASE_URL": self.database_url,
            # redis://redis:6379/0 -> redis://127.0.0.1:6379/0: same database number.
            "OPTIMLAB_BROKER_URL": urlunsplit(broker._replace(netloc=self.broker_netloc)),
            "OPTIMLAB_QUEUE_PREFIX": self.prefix,
            "OPTIMLAB_HEARTBEAT_SECONDS": "0.5",
        })
        return env

    def start(self, name: str, config: dict[str, Any],
              command: list[str] | None = None) -> subprocess.Popen[bytes]:
        """The service's command as the image's ENTRYPOINT (``optimlab``) runs it."""
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "optimlab.service.cli", *(command or config["command"])],
            env=self.env(config), cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()
        self.processes[name] = process
        return process

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def check(self, config: dict[str, Any], argv: list[str]) -> subprocess.CompletedProcess[str]:
        """Run a healthcheck command once, in the service's environment, with its timeout."""
        timeout = seconds(config["healthcheck"]["timeout"])
        try:
            return subprocess.run(argv, env=self.env(config), cwd=self.cwd,
                                  capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(argv, 124, "", f"timed out after {timeout} s")

    def wait_healthy(self, name: str, config: dict[str, Any], argv: list[str], *,
                     timeout: float) -> None:
        """Run ``argv`` until it exits 0; fail at once if the service's process ends."""
        last: list[subprocess.CompletedProcess[str]] = []

        def healthy() -> bool:
            process = self.processes[name]
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}\n{self.log(name)}")
            last[:] = [self.check(config, argv)]
            return last[0].returncode == 0

        try:
            wait_for(healthy, timeout=timeout, interval=0.5, what=f"{name}'s healthcheck")
        except AssertionError as exc:
            detail = f"{last[0].stdout}{last[0].stderr}"[-2000:] if last else ""
            raise AssertionError(f"{exc}\nlast healthcheck output:\n{detail}\n"
                                 f"{name}'s log:\n{self.log(name)}") from None

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()


def stop_group(process: subprocess.Popen[bytes], grace: float = STOP_GRACE_SECONDS) -> bool:
    """Stop like ``docker stop`` with an init process: SIGTERM to the command's process,
    SIGKILL after ``grace`` seconds to whatever it started that is left (its process group,
    and descendants that moved to sessions of their own, as the per-GPU workers do).
    Return whether SIGTERM sufficed."""
    group = process.pid  # start_new_session: the process leads its own group
    family: list[psutil.Process] = []
    with contextlib.suppress(psutil.NoSuchProcess):
        family = psutil.Process(process.pid).children(recursive=True)

    def gone() -> bool:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            pass
        else:
            return False
        return not any(_alive(p) for p in family)

    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    graceful = False
    while time.monotonic() < deadline:
        if process.poll() is not None and gone():
            graceful = True
            break
        time.sleep(0.05)
    if not graceful:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        for child in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()  # psutil checks the process is still the one it saw
    process.wait()
    return graceful


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def local(postgres_server: str, redis_url: str, tmp_path: Path) -> Iterator[Local]:
    """A fresh database and queue prefix for the services started here; all gone after."""
    tag = uuid.uuid4().hex[:12]
    database = f"optimlab_compose_{tag}"
    prefix = f"compose-{tag}-"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    home = tmp_path / "home"
    for folder in (home, tmp_path / "cwd", tmp_path / "logs"):
        folder.mkdir()
    # Only the compose environment configures optimlab, as in a container; the image's
    # user has a home of its own, and so do these processes.
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("OPTIMLAB_")}
    base_env["HOME"] = str(home)
    state = Local(database_url=urlunsplit(urlsplit(postgres_server)._replace(path=f"/{database}")),
                  broker_netloc=urlsplit(redis_url).netloc, prefix=prefix, base_env=base_env,
                  cwd=tmp_path / "cwd", logs=tmp_path / "logs", processes={})
    try:
        yield state
    finally:
        for process in state.processes.values():
            if process.returncode is None:
                stop_group(process)
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"*{prefix}*"))
        if keys:
            client.delete(*keys)
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def registered(local: Local) -> list[tuple[str, str, str, int]]:
    rows = local.query("SELECT name, queues, device, pid FROM workers ORDER BY started_at")
    return [(str(n), str(q), str(d), int(p)) for n, q, d, p in rows]


def run_job(local: Local, url: str, name: str, key: str) -> str:
    """Submit the seed job through the API with the API key; return the worker that ran it."""
    headers = {"Authorization": f"Bearer {key}"}
    response = httpx.post(f"{url}/v1/jobs", json={**SEED_SPEC, "name": name}, headers=headers,
                          timeout=10)
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]

    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = httpx.get(f"{url}/v1/jobs/{job_id}", headers=headers,
                                        timeout=10).json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    job = wait_for(finished, timeout=60, interval=0.1, what=f"job {name} to finish")
    assert job["status"] == "succeeded", job
    ((worker,),) = local.query("SELECT worker FROM jobs WHERE id = %s", job_id)
    return str(worker)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.timeout(300)
def test_compose_services_come_up_here_with_their_own_commands_and_healthchecks(
        local: Local) -> None:
    compose = load_compose()
    prefix = local.prefix

    def tables() -> set[str]:
        return {str(t) for (t,) in local.query(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}

    # migrate: a one-shot that creates the schema in the empty database, and may run again
    # (every `docker compose up` runs it).
    migrate_config = service(compose, "migrate")
    assert not TABLES & tables()
    for attempt in (1, 2):
        migrate = local.start(f"migrate-{attempt}", migrate_config)
        try:
            code = migrate.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"migrate still runs after 60 s\n{local.log(f'migrate-{attempt}')}")
        assert code == 0, f"migrate exited with {code}\n{local.log(f'migrate-{attempt}')}"
        assert tables() >= TABLES, f"tables after migrate: {sorted(tables())}"

    # The first API key, made as the compose file's comment says (`docker compose run`
    # runs the service's image with those arguments after its ENTRYPOINT, optimlab).
    key_service, key_args = first_key_command()
    made = subprocess.run([sys.executable, "-m", "optimlab.service.cli", *key_args],
                          env=local.env(service(compose, key_service)), cwd=local.cwd,
                          capture_output=True, text=True, timeout=60, check=False)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()

    # api: the compose command on a free port; the compose healthcheck on that port.
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api_config = service(compose, "api")
    command = list(api_config["command"])
    assert command[command.index("--port") + 1] == "8000"
    command[command.index("--port") + 1] = str(port)
    command[command.index("--host") + 1] = "127.0.0.1"
    api_check = healthcheck_argv(api_config)
    assert sum("127.0.0.1:8000/" in arg for arg in api_check) == 1, api_check
    api_check = [arg.replace("127.0.0.1:8000/", f"127.0.0.1:{port}/") for arg in api_check]
    worker_config = service(compose, "worker")
    worker_check = healthcheck_argv(worker_config)

    # Neither healthcheck passes before its service runs.
    assert local.check(api_config, api_check).returncode != 0
    assert local.check(worker_config, worker_check).returncode != 0

    local.start("api", api_config, command)
    worker = local.start("worker", worker_config)
    local.wait_healthy("api", api_config, api_check, timeout=90)
    ready = httpx.get(f"{url}/readyz", timeout=5).json()
    assert ready["database"] == ready["broker"] == "ok", ready
    local.wait_healthy("worker", worker_config, worker_check, timeout=90)
    ((name, queues, device, pid),) = registered(local)
    assert (queues, device, pid) == (f"{prefix}cpu", "cpu", worker.pid), registered(local)

    # The API and the worker share one configuration: a job submitted to one runs on the other.
    assert httpx.get(f"{url}/v1/jobs", timeout=5).status_code == 401  # no key
    assert run_job(local, url, "compose cpu worker", key) == name

    # docker stop: the worker leaves within the grace period and unregisters; its
    # healthcheck then fails.
    assert stop_group(worker), f"worker ignored SIGTERM for 15 s\n{local.log('worker')}"
    assert registered(local) == []
    assert local.check(worker_config, worker_check).returncode != 0

    # worker-gpu: `--gpus all` with no GPU visible runs one CPU worker (with GPUs, one
    # worker per GPU, each consuming the gpu and cpu queues).
    gpu_config = service(compose, "worker-gpu")
    gpu_worker = local.start("worker-gpu", gpu_config)
    local.wait_healthy("worker-gpu", gpu_config, healthcheck_argv(gpu_config), timeout=90)
    gpus = torch.cuda.device_count()

    def all_registered() -> list[tuple[str, str, str, int]] | None:
        rows = registered(local)
        return rows if len(rows) >= max(1, gpus) else None

    rows = wait_for(all_registered, timeout=60, what="a worker per GPU (or one) to register")
    assert len(rows) == max(1, gpus), rows
    family = {gpu_worker.pid, *(p.pid for p in psutil.Process(gpu_worker.pid).children(True))}
    for worker_name, queues, device, pid in rows:
        assert pid in family, f"worker {worker_name} (pid {pid}) is not worker-gpu's"
        if gpus == 0:
            assert (queues, device) == (f"{prefix}cpu", "cpu"), rows
        else:
            assert queues == f"{prefix}gpu,{prefix}cpu", rows
            assert device.startswith("cuda:"), rows
    assert run_job(local, url, "compose gpu worker", key) in {row[0] for row in rows}
