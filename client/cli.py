"""The client's commands of ``optimlab``: submit, jobs, show, history, compare, sweep, cancel.

``register(app)`` adds them to the ``optimlab`` typer app. httpx and rich are imported in
the commands themselves, so that ``optimlab --help`` stays fast.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from optimlab.client.client import Client

# Exit codes scripts can rely on.
OK, FAILED, REFUSED, DIVERGED, UNREACHABLE, UNAUTHORIZED = 0, 1, 2, 3, 4, 5
EXIT_CODES = (
    "Exit codes: 0 succeeded; 1 a job failed or was cancelled; 2 usage error or the server "
    "refused the request (a 422 names the field on stderr; 404 unknown id; 409 conflict; "
    "429/403 a quota); 3 a job diverged (only with --fail-on-diverged); 4 server unreachable "
    "or failing (5xx); 5 no API key, or the server refused it (401).")

ServerOption = Annotated[str, typer.Option(
    "--server", metavar="URL", envvar="OPTIMLAB_SERVER", help="The optimlab API's URL.")]
KeyOption = Annotated[str | None, typer.Option(
    "--key", metavar="KEY", envvar="OPTIMLAB_API_KEY", help="API key, sent as a Bearer token.")]
SpecArgument = Annotated[Path, typer.Argument(
    metavar="SPEC", help="A spec file: .json, .yaml or .yml.", show_default=False)]
WaitOption = Annotated[bool, typer.Option(
    "--wait", help="Follow the run live (a progress bar on stderr), then print the summary.")]
DivergedOption = Annotated[bool, typer.Option(
    "--fail-on-diverged", help="With --wait: exit 3 when a job's outcome is diverged.")]
IdArgument = Annotated[str, typer.Argument(
    metavar="ID", help="The job's id.", show_default=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead.")]
DEFAULT_SERVER = "http://127.0.0.1:8000"

F = TypeVar("F", bound=Callable[..., Any])


def register(app: typer.Typer) -> None:
    """Add the client's commands to ``app`` (the ``optimlab`` command)."""
    for name, command in COMMANDS.items():
        app.command(name, epilog=EXIT_CODES)(command)
    if not isinstance(app.info.epilog, str):  # unset: typer's placeholder
        app.info.epilog = EXIT_CODES


def _errors_as_exit_codes(command: F) -> F:
    """Turn the client's exceptions into a message on stderr and a documented exit code."""
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        from optimlab.client.errors import (
            OptimlabError,
            ServerUnavailable,
            SpecRefused,
            Unauthorized,
        )
        from optimlab.client.specs import SpecFileError

        try:
            return command(*args, **kwargs)
        except SpecRefused as exc:
            typer.echo(f"error: refused: {exc.message}", err=True)
            for field in exc.fields:
                typer.echo(f"  field: {field}", err=True)
            raise typer.Exit(REFUSED) from None
        except ServerUnavailable as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(UNREACHABLE) from None
        except Unauthorized as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(UNAUTHORIZED) from None
        except OptimlabError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            failing = exc.status is None or exc.status >= 500
            raise typer.Exit(UNREACHABLE if failing else REFUSED) from None
        except SpecFileError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(REFUSED) from None

    return run  # type: ignore[return-value]


def _client(server: str, key: str | None) -> Client:
    import logging

    from optimlab.client.client import Client

    # `optimlab` logs at INFO for its servers; a client's requests are no news.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return Client(server, api_key=key)


def _exit_for(ends: list[tuple[str, str | None]], *, fail_on_diverged: bool) -> int:
    """The exit code for jobs that ended with these (status, outcome)."""
    if any(status in ("failed", "cancelled") for status, _ in ends):
        return FAILED
    diverged = any(outcome == "diverged" for _, outcome in ends)
    return DIVERGED if fail_on_diverged and diverged else OK


@_errors_as_exit_codes
def submit(spec: SpecArgument, wait: WaitOption = False,
           fail_on_diverged: DivergedOption = False, server: ServerOption = DEFAULT_SERVER,
           key: KeyOption = None) -> None:
    """Submit a job spec; print its id (with --wait: follow it, then print the summary)."""
    from optimlab.client import render

    with _client(server, key) as client:
        job = client.submit(spec)
        typer.echo(job["id"])
        if not wait:
            return
        with render.job_bar(render.console(stderr=True)) as show:
            done = client.wait(job["id"], progress=show)
    render.console().print(render.job_view(done))
    outcome = (done.get("summary") or {}).get("outcome")
    raise typer.Exit(_exit_for([(done["status"], outcome)], fail_on_diverged=fail_on_diverged))


@_errors_as_exit_codes
def jobs(status: Annotated[str | None, typer.Option(
             "--status", metavar="STATUS",
             help="queued, running, succeeded, failed or cancelled.")] = None,
         tag: Annotated[str | None, typer.Option("--tag", metavar="TAG")] = None,
         optimizer: Annotated[str | None, typer.Option("--optimizer", metavar="NAME")] = None,
         name: Annotated[str | None, typer.Option(
             "--name", metavar="TEXT", help="A part of the name.")] = None,
         sweep: Annotated[str | None, typer.Option(
             "--sweep", metavar="ID", help="A sweep's id.")] = None,
         sort: Annotated[str | None, typer.Option(
             "--sort", metavar="FIELD",
             help="A summary field (best_loss, -steps_per_second, ...); "
                  "- is descending. Default: newest first.")] = None,
         limit: Annotated[int, typer.Option("--limit", metavar="N", min=1)] = 20,
         quiet: Annotated[bool, typer.Option(
             "--quiet", "-q", help="Only the ids, one a line.")] = False,
         as_json: JsonOption = False, server: ServerOption = DEFAULT_SERVER,
         key: KeyOption = None) -> None:
    """List jobs as a table (newest first, or by --sort)."""
    from optimlab.client import render

    with _client(server, key) as client:
        found = list(client.jobs(status=status, tag=tag, optimizer=optimizer, name=name,
                                 sweep=sweep, sort=sort, limit=limit))
    if as_json:
        _print_json(found)
    elif quiet:
        for job in found:
            typer.echo(job["id"])
    else:
        render.console().print(render.jobs_table(found))


@_errors_as_exit_codes
def show(job_id: IdArgument,
         spec: Annotated[bool, typer.Option("--spec", help="Also print the spec.")] = False,
         as_json: JsonOption = False, server: ServerOption = DEFAULT_SERVER,
         key: KeyOption = None) -> None:
    """Show one job: status, timestamps, error and summary."""
    from optimlab.client import render

    with _client(server, key) as client:
        job = client.job(job_id)
    if as_json:
        _print_json(job)
        return
    out = render.console()
    out.print(render.job_view(job))
    if spec:
        out.print(render.spec_json(job), markup=False)


@_errors_as_exit_codes
def history(job_id: IdArgument,
            names: Annotated[str | None, typer.Option(
                "--names", metavar="NAMES",
                help="Comma-separated series, e.g. loss,lr. Default: all.")] = None,
            csv: Annotated[bool, typer.Option(
                "--csv", help="Print the API's CSV (step,name,value) as it is.")] = False,
            max_points: Annotated[int | None, typer.Option(
                "--max-points", metavar="N", help="At most this many points per series.")] = None,
            from_step: Annotated[int | None, typer.Option("--from-step", metavar="STEP")] = None,
            to_step: Annotated[int | None, typer.Option("--to-step", metavar="STEP")] = None,
            smoothing: Annotated[float | None, typer.Option(
                "--smoothing", metavar="WEIGHT",
                help="TensorBoard's smoothing weight, in [0, 1).")] = None,
            server: ServerOption = DEFAULT_SERVER, key: KeyOption = None) -> None:
    """Print a job's metric history: a table (step x series), or CSV."""
    from optimlab.client import render

    wanted = [n.strip() for n in names.split(",") if n.strip()] if names else None
    window: dict[str, Any] = {"max_points": max_points, "from_step": from_step,
                              "to_step": to_step, "smoothing": smoothing}
    with _client(server, key) as client:
        if csv:
            for chunk in client.history_csv(job_id, wanted, **window):
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            return
        found = client.history(job_id, wanted, **window)
    render.console().print(render.history_table(found))


@_errors_as_exit_codes
def compare(job_ids: Annotated[list[str], typer.Argument(
                metavar="ID...", help="Two or more job ids.", show_default=False)],
            metric: Annotated[str, typer.Option("--metric", metavar="NAME")] = "loss",
            rank_by: Annotated[str | None, typer.Option(
                "--rank-by", metavar="FIELD", help="A summary field; default: final_loss.")] = None,
            max_points: Annotated[int | None, typer.Option("--max-points", metavar="N")] = None,
            plot: Annotated[Path | None, typer.Option(
                "--plot", metavar="FILE",
                help="Write the server's chart here (.png or .svg).")] = None,
            server: ServerOption = DEFAULT_SERVER, key: KeyOption = None) -> None:
    """Rank jobs by a summary field; with --plot, save their curves of --metric."""
    from optimlab.client import render

    fmt = _plot_format(plot)
    with _client(server, key) as client:
        comparison = client.compare(job_ids, metric=metric, rank_by=rank_by,
                                    max_points=max_points)
        image = None if plot is None else client.compare_plot(
            job_ids, metric=metric, max_points=max_points, fmt=fmt)
    render.console().print(render.ranking_table(comparison))
    if plot is not None and image is not None:
        plot.write_bytes(image)
        typer.echo(f"wrote {plot}", err=True)


def _plot_format(plot: Path | None) -> Any:
    if plot is None or plot.suffix.lower() == ".png":
        return "png"
    if plot.suffix.lower() == ".svg":
        return "svg"
    raise typer.BadParameter("the plot is a .png or .svg file", param_hint="--plot")


@_errors_as_exit_codes
def sweep(spec: SpecArgument, wait: WaitOption = False,
          fail_on_diverged: DivergedOption = False,
          rank_by: Annotated[str | None, typer.Option(
              "--rank-by", metavar="FIELD",
              help="The leaderboard's summary field; default: final_loss.")
          ] = None,
          top: Annotated[int, typer.Option(
              "--top", metavar="N", min=1, help="Leaderboard rows.")] = 10,
          server: ServerOption = DEFAULT_SERVER, key: KeyOption = None) -> None:
    """Submit a sweep; print its id (with --wait: follow it, then print the leaderboard).

    The sweep's base may be a path to a job spec file, relative to the sweep file."""
    from optimlab.client import render

    with _client(server, key) as client:
        created = client.sweep(spec)
        typer.echo(created["id"])
        if not wait:
            return
        with render.sweep_bar(render.console(stderr=True)) as show_progress:
            done = client.wait_sweep(created["id"], progress=show_progress, rank_by=rank_by)
    out = render.console()
    out.print(render.sweep_line(done))
    out.print(render.leaderboard_table(done, top))
    ends = [(e["status"], e["outcome"]) for e in done.get("leaderboard") or []]
    raise typer.Exit(_exit_for(ends, fail_on_diverged=fail_on_diverged))


@_errors_as_exit_codes
def cancel(target: Annotated[str, typer.Argument(metavar="ID", help="A job's id (or a sweep's with "
                                                      "--sweep).", show_default=False)],
           is_sweep: Annotated[bool, typer.Option(
               "--sweep", help="Cancel every unfinished job of this sweep.")] = False,
           server: ServerOption = DEFAULT_SERVER, key: KeyOption = None) -> None:
    """Cancel a queued or running job (or a whole sweep)."""
    with _client(server, key) as client:
        if is_sweep:
            typer.echo(f"sweep {target}: {client.cancel_sweep(target)['counts']}")
        else:
            typer.echo(f"job {target}: {client.cancel(target)['status']}")


def _print_json(value: Any) -> None:
    import json

    typer.echo(json.dumps(value, indent=2))


COMMANDS: dict[str, Callable[..., Any]] = {
    "submit": submit, "jobs": jobs, "show": show, "history": history, "compare": compare,
    "sweep": sweep, "cancel": cancel}
