"""The ``optimlab`` command: up (everything, embedded), api, worker, migrate."""

from __future__ import annotations

import importlib.metadata
import ipaddress
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from optimlab.client.cli import register as register_client_commands
from optimlab.service import keys_cli
from optimlab.service.settings import Settings, get_settings

if TYPE_CHECKING:
    from optimlab.service.processes import RestartPolicy

# Plain (click) help: typer's rich help panels label every option with its type, flags
# too, so --help read "--help <bool>"; plain help shows a flag bare and an option's metavar.
app = typer.Typer(help="optimlab: an optimizer laboratory served over HTTP.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  rich_markup_mode=None)

GpusOption = Annotated[str, typer.Option(
    "--gpus", metavar="GPUS",
    help="all (one worker per visible GPU, CPU if none), none, or indices like 0,1.")]
ConcurrencyOption = Annotated[int, typer.Option(
    "--concurrency", min=1, metavar="N", help="Jobs run at once by each worker process.")]
HostOption = Annotated[str, typer.Option("--host", metavar="HOST",
                                         help="Interface the API listens on.")]
PortOption = Annotated[int, typer.Option("--port", min=1, max=65535, metavar="PORT")]
AllowNoAuthOption = Annotated[bool, typer.Option(
    "--allow-no-auth", help="Serve a non-loopback address with OPTIMLAB_AUTH=off: anyone "
                            "who reaches the port may read, cancel and delete every job.")]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def auth_for_up(host: str) -> str:
    """OPTIMLAB_AUTH when set; else off on a loopback address (one person's machine),
    required on any other."""
    if os.environ.get("OPTIMLAB_AUTH", "").strip():
        return get_settings().auth
    return "off" if is_loopback(host) else "required"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"optimlab {importlib.metadata.version('optimlab')}")
        raise typer.Exit()


@app.callback()
def options(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the installed optimlab's version and exit.")] = False) -> None:
    """optimlab: an optimizer laboratory served over HTTP."""


@app.command()
def up(host: HostOption = "127.0.0.1", port: PortOption = 8000,
       data_dir: Annotated[Path | None, typer.Option(
           "--data-dir", metavar="DIR",
           help="Where the SQLite database and the folder broker live (default: "
                "OPTIMLAB_DATA_DIR, else $XDG_DATA_HOME/optimlab, else "
                "~/.local/share/optimlab).")] = None,
       gpus: GpusOption = "all", concurrency: ConcurrencyOption = 1,
       allow_no_auth: AllowNoAuthOption = False) -> None:
    """Run the API and a worker, embedded: SQLite and a folder broker, no server needed.

    Bound to a loopback address (the default) it asks for no API key unless OPTIMLAB_AUTH
    says so; bound to any other, keys are required (make one: optimlab keys create)."""
    from optimlab.service.embedded import DataDirInUse, lock_data_dir, prepare
    from optimlab.service.processes import ChildSpec, Supervisor, optimlab_command

    auth = auth_for_up(host)
    _refuse_open(host, auth, allow_no_auth)
    folder = (data_dir or get_settings().data_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        lock = lock_data_dir(folder)
    except DataDirInUse as exc:
        raise typer.BadParameter(str(exc), param_hint="--data-dir") from None
    settings = Settings(data_dir=folder, database_url=None, broker_url=None,
                        ready_requires_worker=True)
    prepare(settings)
    env = {"OPTIMLAB_DATA_DIR": str(folder), "OPTIMLAB_READY_REQUIRES_WORKER": "true",
           "OPTIMLAB_DATABASE_URL": "", "OPTIMLAB_BROKER_URL": "", "OPTIMLAB_AUTH": auth}
    api_args = ("--allow-no-auth",) if allow_no_auth else ()
    children = [
        ChildSpec("worker", optimlab_command("worker", "--gpus", gpus,
                                             "--concurrency", str(concurrency)), env),
        ChildSpec("api", optimlab_command("api", "--host", host, "--port", str(port),
                                          *api_args), env),
    ]
    typer.echo(f"optimlab: data in {folder}; API on http://{host}:{port} (docs: /docs)")
    if auth == "off":
        typer.echo(f"optimlab: auth is off (bound to {host}): no API key needed; set "
                   "OPTIMLAB_AUTH=required to ask for one")
    else:
        typer.echo("optimlab: auth is required: every /v1 request needs an API key; make one "
                   f"with OPTIMLAB_DATA_DIR={folder} optimlab keys create --name NAME")
    with lock:
        code = Supervisor(children, cwd=folder, restart=restart_policy(settings)).run()
    raise typer.Exit(code)


def _refuse_open(host: str, auth: str, allowed: bool) -> None:
    if auth == "off" and not is_loopback(host) and not allowed:
        typer.echo(f"error: refusing to serve {host} with OPTIMLAB_AUTH=off: anyone who "
                   "reaches it could read, cancel and delete every job. Set "
                   "OPTIMLAB_AUTH=required (and make keys: optimlab keys create), bind a "
                   "loopback address, or pass --allow-no-auth.", err=True)
        raise typer.Exit(2)
def restart_policy(settings: Settings) -> RestartPolicy:
    from optimlab.service.processes import RestartPolicy

    return RestartPolicy(stable_seconds=settings.restart_stable_seconds,
                         max_crashes=settings.restart_max_crashes)


@app.command()
def api(host: HostOption = "127.0.0.1", port: PortOption = 8000,
        allow_no_auth: AllowNoAuthOption = False) -> None:
    """Run the HTTP API (configured by OPTIMLAB_DATABASE_URL and OPTIMLAB_BROKER_URL).

    OPTIMLAB_AUTH defaults to required; with it off, a non-loopback --host is refused
    unless --allow-no-auth is given."""
    import uvicorn

    settings = get_settings()
    _refuse_open(host, settings.auth, allow_no_auth)
    # matplotlib (the plot routes) keeps a font cache; keep it in the data folder, not $HOME.
    os.environ.setdefault("MPLCONFIGDIR", str(settings.data_dir / "matplotlib"))
    uvicorn.run("optimlab.service.api.main:create_app", factory=True, host=host, port=port,
                timeout_graceful_shutdown=3, log_level=settings.log_level.lower(),
                access_log=settings.access_log)


@app.command()
def worker(gpus: GpusOption = "all", concurrency: ConcurrencyOption = 1) -> None:
    """Run Celery workers: one per selected GPU, or one on the CPU."""
    import torch

    from optimlab.service.processes import ChildSpec, Supervisor, optimlab_command
    from optimlab.worker.launch import GpuSelectionError, plan_workers, run_worker

    settings = get_settings()
    try:
        plans = plan_workers(gpus, settings, visible_gpus=torch.cuda.device_count())
    except GpuSelectionError as exc:
        raise typer.BadParameter(str(exc), param_hint="--gpus") from None
    if len(plans) == 1 and not plans[0].env:
        run_worker(settings, plans[0], concurrency=concurrency)
        return
    children = [ChildSpec(plan.name, optimlab_command("gpu-worker", "--concurrency",
                                                      str(concurrency)), plan.env)
                for plan in plans]
    raise typer.Exit(Supervisor(children, restart=restart_policy(settings)).run())


@app.command("gpu-worker", hidden=True)
def gpu_worker(concurrency: ConcurrencyOption = 1) -> None:
    """One worker on the single GPU its CUDA_VISIBLE_DEVICES leaves visible."""
    from optimlab.worker.launch import gpu_plan, run_worker

    settings = get_settings()
    index = int(os.environ.get("CUDA_VISIBLE_DEVICES", "0"))
    run_worker(settings, gpu_plan(index, settings), concurrency=concurrency)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (OPTIMLAB_DATABASE_URL)."""
    from optimlab.migrations import upgrade

    settings = get_settings()
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    typer.echo(upgrade(settings.database).describe())


register_client_commands(app)  # submit, jobs, show, history, compare, sweep, cancel
app.add_typer(keys_cli.app, name="keys")


def main() -> None:
    from optimlab.service.logs import configure_logging

    configure_logging(get_settings())
    app()


if __name__ == "__main__":
    main()
