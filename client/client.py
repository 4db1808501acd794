"""``Client``: the optimlab HTTP API from Python, on httpx."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, overload
from urllib.parse import quote

import httpx

from optimlab.client.errors import raise_for, unreachable
from optimlab.client.events import Event, Reconnect, follow
from optimlab.client.history import History, Shape, shaped
from optimlab.client.progress import (
    JobTracker,
    Progress,
    SweepProgress,
    SweepTracker,
)
from optimlab.client.specs import SpecLike, load_spec

DEFAULT_SERVER = "http://127.0.0.1:8000"
Id = str | uuid.UUID
Job = dict[str, Any]


class Client:
    """The optimlab API at ``base_url``; ``api_key`` (default: ``$OPTIMLAB_API_KEY``) goes
    as a Bearer token on every request, event streams included.

    Every method returns the API's JSON as plain dicts and lists, and raises
    :class:`~optimlab.client.errors.OptimlabError` (``SpecRefused``, ``NotFound``,
    ``Conflict``, ``ServerUnavailable``, ``Unauthorized``, ``QuotaExceeded``) for what the
    server refuses or cannot answer.
    Use it as a context manager, or call :meth:`close`. ``reconnect`` says how often an
    event stream (``wait``, ``events``) reconnects after a drop before giving up.
    """

    def __init__(self, base_url: str = DEFAULT_SERVER, api_key: str | None = None,
                 timeout: float = 30.0, *, reconnect: Reconnect | None = None) -> None:
        api_key = os.environ.get("OPTIMLAB_API_KEY") if api_key is None else api_key
        # Sent on every request, event streams included (they are plain GETs of this client).
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self.reconnect = reconnect or Reconnect()
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- jobs ---------------------------------------------------------------------------

    def submit(self, spec: SpecLike) -> Job:
        """Queue a job: ``spec`` is a dict, a ``JobSpec`` or a .json/.yaml/.yml file."""
        return self._json("POST", "/v1/jobs", json=load_spec(spec))

    def job(self, job_id: Id) -> Job:
        """The job: status, spec, timestamps, error, summary (progress while it runs)."""
        return self._json("GET", _job(job_id))

    def jobs(self, *, status: str | None = None, tag: str | None = None,
             name: str | None = None, optimizer: str | None = None, sweep: Id | None = None,
             created_after: datetime | None = None, created_before: datetime | None = None,
             sort: str | None = None, limit: int | None = None,
             page_size: int = 200) -> Iterator[Job]:
        """Every job matching the filters (newest first, or by ``sort``: a summary field,
        ``-`` for descending), page after page; at most ``limit`` of them."""
        params = _params(status=status, tag=tag, name=name, optimizer=optimizer, sweep=sweep,
                         created_after=created_after, created_before=created_before,
                         sort=sort)
        left = limit
        cursor: str | None = None
        while left is None or left > 0:
            size = page_size if left is None else min(page_size, left)
            page = self._json("GET", "/v1/jobs",
                              params={**params, "limit": size, **_params(cursor=cursor)})
            yield from page["data"]
            if left is not None:
                left -= len(page["data"])
            cursor = page["next_cursor"]
            if not cursor:
                return

    def wait(self, job_id: Id, progress: Callable[[Progress], object] | None = None,
             timeout: float | None = None) -> Job:
        """Follow the job's event stream until its run is over; return the finished job.

        ``progress`` is called with a :class:`Progress` (step, steps, loss, status) each
        time one changes. ``timeout`` seconds raise ``WaitTimeout`` (the job goes on).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        tracker = JobTracker(Progress(job_id=str(job_id)))
        for event in self._follow(f"{_job(job_id)}/events", None, deadline):
            changed = tracker.update(event)
            if progress is not None and changed is not None:
                progress(changed)
        return self.job(job_id)

    def events(self, job_id: Id, last_event_id: str | None = None) -> Iterator[Event]:
        """The job's events (``status``, ``reset``, ``metrics``, ``end``) as they come,
        until ``end``; a dropped connection is resumed with Last-Event-ID, so each point
        arrives once. Pass an event's ``id`` as ``last_event_id`` to resume later."""
        return self._follow(f"{_job(job_id)}/events", last_event_id, None)

    def cancel(self, job_id: Id) -> Job:
        """Cancel a queued or running job (Conflict once it is over)."""
        return self._json("POST", f"{_job(job_id)}/cancel")

    def delete(self, job_id: Id) -> None:
        """Delete a finished job with its points, tags and log lines (Conflict while it
        is queued or running: cancel it first)."""
        self._request("DELETE", _job(job_id))

    def rerun(self, job_id: Id) -> Job:
        """A new job with the same spec (not part of any sweep)."""
        return self._json("POST", f"{_job(job_id)}/rerun")

    def update(self, job_id: Id, *, name: str | None = None,
               tags: Sequence[str] | None = None) -> Job:
        """Rename the job and/or replace its tags."""
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if tags is not None:
            body["tags"] = list(tags)
        return self._json("PATCH", _job(job_id), json=body)

    def logs(self, job_id: Id, *, attempt: int | None = None, min_level: str | None = None,
             limit: int | None = None) -> list[dict[str, Any]]:
        """The worker's log lines for the job, oldest first: ``{attempt, at, level,
        logger, message}``."""
        body = self._json("GET", f"{_job(job_id)}/logs",
                          params=_params(attempt=attempt, min_level=min_level, limit=limit))
        lines: list[dict[str, Any]] = body["lines"]
        return lines

    # -- histories ----------------------------------------------------------------------

    def series(self, job_id: Id) -> list[dict[str, Any]]:
        """Every stored series of the job: ``{name, points, first_step, last_step}``."""
        found: list[dict[str, Any]] = self._json("GET", f"{_job(job_id)}/series")["series"]
        return found

    @overload
    def history(self, job_id: Id, names: Sequence[str] | None = ..., *,
                max_points: int | None = ..., from_step: int | None = ...,
                to_step: int | None = ..., smoothing: float | None = ...,
                as_: Literal["lists", "numpy"] = ...) -> History: ...

    @overload
    def history(self, job_id: Id, names: Sequence[str] | None = ..., *,
                max_points: int | None = ..., from_step: int | None = ...,
                to_step: int | None = ..., smoothing: float | None = ...,
                as_: Literal["pandas"]) -> Any: ...

    def history(self, job_id: Id, names: Sequence[str] | None = None, *,
                max_points: int | None = None, from_step: int | None = None,
                to_step: int | None = None, smoothing: float | None = None,
                as_: Shape = "lists") -> Any:
        """The job's series (all, or ``names``) in the step range, at most ``max_points``
        each (first, last, min and max of each step bucket), with ``smoothing`` (the
        debiased EMA) as ``smoothed``: lists, numpy arrays, or a pandas DataFrame
        (``as_="pandas"``, needs the ``pandas`` extra). See ``history.shaped``."""
        params = _history_params(names, max_points, from_step, to_step, smoothing)
        body = self._json("GET", f"{_job(job_id)}/metrics", params=params)
        return shaped(body["series"], as_)

    def history_csv(self, job_id: Id, names: Sequence[str] | None = None, *,
                    max_points: int | None = None, from_step: int | None = None,
                    to_step: int | None = None, smoothing: float | None = None
                    ) -> Iterator[bytes]:
        """The API's CSV (``step,name,value``) for the same query, streamed as it comes."""
        params = _history_params(names, max_points, from_step, to_step, smoothing)
        try:
            with self._http.stream("GET", f"{_job(job_id)}/metrics.csv",
                                   params=params) as response:
                raise_for(response)
                yield from response.iter_bytes()
        except httpx.TransportError as exc:
            raise unreachable(exc, self.base_url) from exc

    def compare(self, job_ids: Sequence[Id], *, metric: str = "loss",
                max_points: int | None = None, rank_by: str | None = None,
                band: Literal["minmax", "std"] | None = None) -> dict[str, Any]:
        """The jobs' ``metric`` on shared step buckets, seed groups with a band, and the
        summaries ranked by ``rank_by`` (the API's defaults where not given)."""
        params = _params(jobs=_ids(job_ids), metric=metric, max_points=max_points,
                         rank_by=rank_by, band=band)
        return self._json("GET", "/v1/compare", params=params)

    def compare_plot(self, job_ids: Sequence[Id], *, metric: str = "loss",
                     fmt: Literal["png", "svg"] = "png", max_points: int | None = None,
                     band: Literal["minmax", "std"] | None = None,
                     log: bool | None = None) -> bytes:
        """The comparison drawn by the server (``GET /v1/compare/plot.png``), as bytes."""
        params = _params(jobs=_ids(job_ids), metric=metric, max_points=max_points, band=band,
                         log=None if log is None else str(log).lower())
        return self._request("GET", f"/v1/compare/plot.{fmt}", params=params).content

    # -- sweeps -------------------------------------------------------------------------

    def sweep(self, spec_or_path: SpecLike) -> dict[str, Any]:
        """Queue a sweep (a dict, a ``SweepSpec`` or a .json/.yaml/.yml file). Its ``base``
        may be a path to a job spec file, read relative to the sweep file."""
        request = load_spec(spec_or_path)
        base = request.get("base")
        if isinstance(base, str):
            folder = Path(spec_or_path).parent \
                if isinstance(spec_or_path, str | os.PathLike) else Path()
            request["base"] = load_spec(folder / base)
        return self._json("POST", "/v1/sweeps", json=request)

    def sweep_status(self, sweep_id: Id, *, rank_by: str | None = None,
                     limit: int | None = None) -> dict[str, Any]:
        """Counts by status, the leaderboard by ``rank_by``, each point over its seeds,
        and which jobs ran fused."""
        return self._json("GET", _sweep(sweep_id), params=_params(rank_by=rank_by, limit=limit))

    def sweep_events(self, sweep_id: Id, last_event_id: str | None = None
                     ) -> Iterator[Event]:
        """:meth:`events` for every job of the sweep, until all of them are over."""
        return self._follow(f"{_sweep(sweep_id)}/events", last_event_id, None)

    def wait_sweep(self, sweep_id: Id,
                   progress: Callable[[SweepProgress], object] | None = None,
                   timeout: float | None = None, *, rank_by: str | None = None
                   ) -> dict[str, Any]:
        """Follow the sweep's stream until every job is over; return :meth:`sweep_status`.
        ``progress`` gets a :class:`SweepProgress` each time a job's status changes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        tracker = SweepTracker(str(sweep_id), self.sweep_status(sweep_id, limit=1)["size"])
        for event in self._follow(f"{_sweep(sweep_id)}/events", None, deadline):
            changed = tracker.update(event)
            if progress is not None and changed is not None:
                progress(changed)
        return self.sweep_status(sweep_id, rank_by=rank_by)

    def cancel_sweep(self, sweep_id: Id) -> dict[str, Any]:
        """Cancel every queued or running job of the sweep."""
        return self._json("POST", f"{_sweep(sweep_id)}/cancel")

    # -- data sets ----------------------------------------------------------------------

    def upload(self, path: str | Path, *, target: str | None = None,
               name: str | None = None) -> dict[str, Any]:
        """Upload a data set file (CSV with a ``target`` column, or NPZ with X and y);
        jobs use it as ``{"kind": "upload", "dataset_id": <its id>}``."""
        file = Path(path)
        with file.open("rb") as content:
            return self._json("POST", "/v1/datasets", files={"file": (file.name, content)},
                              data=_params(target=target, name=name))

    # -- plumbing -----------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise unreachable(exc, self.base_url) from exc
        raise_for(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body: dict[str, Any] = self._request(method, path, **kwargs).json()
        return body

    def _follow(self, path: str, last_event_id: str | None,
                deadline: float | None) -> Iterator[Event]:
        return follow(self._http, path, last_event_id=last_event_id, deadline=deadline,
                      reconnect=self.reconnect)


def _job(job_id: Id) -> str:
    return f"/v1/jobs/{quote(str(job_id), safe='')}"


def _sweep(sweep_id: Id) -> str:
    return f"/v1/sweeps/{quote(str(sweep_id), safe='')}"


def _ids(ids: Sequence[Id]) -> str:
    return ",".join(str(i) for i in ids)


def _params(**values: object) -> dict[str, Any]:
    """Query parameters: the ones given (None is left out), datetimes and ids as text."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        out[key] = value.isoformat() if isinstance(value, datetime) else (
            str(value) if isinstance(value, uuid.UUID) else value)
    return out


def _history_params(names: Sequence[str] | None, max_points: int | None,
                    from_step: int | None, to_step: int | None,
                    smoothing: float | None) -> dict[str, Any]:
    return _params(names=",".join(names) if names else None, max_points=max_points,
                   from_step=from_step, to_step=to_step, smoothing=smoothing)
