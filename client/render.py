"""What the CLI prints: rich tables of jobs, summaries, histories and rankings, and the
live progress bars of a job or a sweep."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from optimlab.client import progress as tracking

SUMMARY_FIELDS = ("outcome", "steps_done", "steps", "initial_loss", "final_loss", "best_loss",
                  "best_step", "converged_at", "diverged_at", "wall_seconds",
                  "steps_per_second", "best_val_loss", "best_val_step")


def console(*, stderr: bool = False) -> Console:
    out = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not out.is_terminal:
        out.width = max(out.width, 160)  # piped: keep ids and numbers on one line
    return out


def number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    return str(value)


def jobs_table(jobs: Iterable[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold")
    for title in ("id", "name", "status", "optimizer", "lr", "schedule", "outcome",
                  "final_loss", "best_loss", "created"):
        table.add_column(title, no_wrap=title in ("id", "created"),
                         justify="right" if title in ("lr", "final_loss", "best_loss")
                         else "left")
    for job in jobs:
        spec, summary = job["spec"], job.get("summary") or {}
        table.add_row(job["id"], job["name"], job["status"], spec["optimizer"]["name"],
                      number(spec["optimizer"].get("lr")),
                      (spec.get("schedule") or {}).get("name", "-"),
                      summary.get("outcome", "-"), number(summary.get("final_loss")),
                      number(summary.get("best_loss")), job["created_at"][:19])
    return table


def job_view(job: dict[str, Any]) -> Table:
    table = Table(box=None, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key in ("id", "name", "status", "attempt", "queue", "created_at", "started_at",
                "finished_at", "sweep_id"):
        if job.get(key) is not None:
            table.add_row(key, str(job[key]))
    if job.get("tags"):
        table.add_row("tags", ", ".join(job["tags"]))
    if job.get("error"):
        table.add_row("error", job["error"])
    summary = job.get("summary") or {}
    for key in SUMMARY_FIELDS:
        if summary.get(key) is not None:
            table.add_row(key, number(summary[key]))
    for key, value in (summary.get("evaluation") or {}).items():
        table.add_row(key, number(value))
    return table


def spec_json(job: dict[str, Any]) -> str:
    return json.dumps(job["spec"], indent=2)


def history_table(history: dict[str, dict[str, Any]]) -> Table:
    """One row per step, one column per series ('-' where a series has no point)."""
    table = Table(box=None, header_style="bold")
    table.add_column("step", justify="right")
    cells: dict[int, dict[str, Any]] = {}
    for name, series in history.items():
        table.add_column(name, justify="right")
        for step, value in zip(series["steps"], series["values"], strict=True):
            cells.setdefault(step, {})[name] = value
    for step in sorted(cells):
        table.add_row(str(step), *(_exact(cells[step].get(n, "-")) for n in history))
    return table


def _exact(value: Any) -> str:
    return "nan/inf" if value is None else value if isinstance(value, str) else repr(value)


def ranking_table(comparison: dict[str, Any]) -> Table:
    differs = {job["id"]: job["differs"] for job in comparison["jobs"]}
    table = Table(box=None, header_style="bold")
    for title in ("rank", "id", "name", comparison["rank_by"], "differs"):
        table.add_column(title, no_wrap=title == "id")
    for row in comparison["ranking"]:
        fields = ", ".join(f"{k}={v}" for k, v in differs.get(row["id"], {}).items())
        table.add_row(str(row["rank"]), row["id"], row["name"], number(row["value"]),
                      fields or "-")
    return table


def leaderboard_table(sweep: dict[str, Any], top: int) -> Table:
    table = Table(box=None, header_style="bold")
    for title in ("rank", "job", "status", "point", "seed", sweep.get("rank_by") or "value",
                  "outcome"):
        table.add_column(title, no_wrap=title == "job")
    for entry in (sweep.get("leaderboard") or [])[:top]:
        point = ", ".join(f"{k}={v}" for k, v in entry["point"].items())
        table.add_row(str(entry["rank"]), entry["job_id"], entry["status"], point or "-",
                      str(entry["seed"]), number(entry["value"]), entry["outcome"] or "-")
    return table


def sweep_line(sweep: dict[str, Any]) -> str:
    counts = ", ".join(f"{n} {status}" for status, n in sorted(sweep["counts"].items()) if n)
    return f"sweep {sweep['id']} ({sweep['name'] or 'unnamed'}): {sweep['size']} jobs, " \
           f"{counts or 'none yet'}"


def _bar(out: Console, what: str) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                    MofNCompleteColumn(), TextColumn(what), TimeRemainingColumn(),
                    console=out, transient=False)


@contextmanager
def job_bar(out: Console) -> Iterator[Any]:
    """A live bar: status, step of steps, the latest loss, ETA; yields the callback."""
    with _bar(out, "loss {task.fields[loss]}") as bar:
        task: TaskID = bar.add_task("queued", total=None, loss="-")

        def show(p: tracking.Progress) -> None:
            bar.update(task, description=p.status, completed=p.step, total=p.steps,
                       loss=number(p.loss))

        yield show


@contextmanager
def sweep_bar(out: Console) -> Iterator[Any]:
    """A live bar: jobs over of the sweep's size, the counts by status, ETA."""
    with _bar(out, "{task.fields[counts]}") as bar:
        task: TaskID = bar.add_task("sweep", total=None, counts="")

        def show(p: tracking.SweepProgress) -> None:
            counts = ", ".join(f"{n} {s}" for s, n in sorted(p.counts.items()))
            bar.update(task, completed=p.finished, total=p.size, counts=counts)

        yield show
