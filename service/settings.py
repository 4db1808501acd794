"""All configuration, from ``OPTIMLAB_*`` environment variables, in one object."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from optimlab.worker.limits import Limits

EMBEDDED_BROKER = "filesystem://"


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/optimlab``, or ``~/.local/share/optimlab`` where XDG_DATA_HOME is
    unset, empty or relative (the XDG base directory rules): ``make run`` and ``optimlab
    up`` share it unless OPTIMLAB_DATA_DIR (or ``--data-dir``) says otherwise."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "optimlab"


class Settings(BaseSettings, Limits):
    """The fields of :class:`Limits` (``OPTIMLAB_MAX_STEPS``, ...) are settings too."""

    model_config = SettingsConfigDict(env_prefix="OPTIMLAB_", frozen=True)

    data_dir: Path = Field(default_factory=default_data_dir,
                           description="Where the embedded database and broker live.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite in data_dir.")
    broker_url: str | None = Field(
        default=None, description="Celery broker URL; default: a folder broker in data_dir.")
    broker_poll_seconds: float = Field(
        default=0.05, gt=0, description="Polling interval of the embedded folder broker.")
    queue_prefix: str = Field(default="", description="Prefix of the cpu/gpu queue names.")
    flush_seconds: float = Field(default=0.5, gt=0, description="How often metrics are stored.")
    heartbeat_seconds: float = Field(
        default=5.0, gt=0, description="How often jobs and workers beat; orphans are checked too.")
    stale_after_seconds: float = Field(
        default=60.0, gt=0, description="A running job without heartbeat this long is requeued.")
    visibility_timeout_seconds: int = Field(
        default=24 * 3600, gt=0, description="Redis redelivers an unacknowledged task after this.")
    max_attempts: int = Field(default=3, ge=1, description="Runs a job may start before it fails.")
    db_retry_first_seconds: float = Field(
        default=0.1, gt=0, description="First wait before a worker retries a database write "
                                       "that failed because the database is away.")
    db_retry_max_seconds: float = Field(
        default=5.0, gt=0, description="Longest wait between a worker's database retries "
                                       "(the backoff doubles up to it).")
    outage_grace_seconds: float = Field(
        default=600.0, gt=0, description="A stale run whose process still lives on this host "
                                         "is taken for cut off from the database, and left "
                                         "alone this long before it is requeued.")
    unstored_points_limit: int = Field(
        default=1_000_000, ge=1, description="Points a run keeps while the database is away; "
                                             "past them training pauses until it is back.")
    reconcile_seconds: float = Field(
        default=30.0, gt=0, description="How often a worker re-sends queued jobs that the "
                                        "broker lost (restarted without persistence, flushed).")
    resend_queued_after_seconds: float = Field(
        default=30.0, ge=0, description="A queued job is re-sent only when its broker holds no "
                                        "message for it and it was queued this long ago.")
    ready_requires_worker: bool = Field(
        default=False, description="/readyz answers 503 until a worker consumes.")
    unserved_wait_seconds: float = Field(
        default=300.0, gt=0, description="A job queued for a GPU fails after this long "
                                         "without a live GPU worker, saying why.")
    restart_stable_seconds: float = Field(
        default=60.0, gt=0, description="A child of `optimlab up` that stayed up this long "
                                        "starts its count of crashes afresh.")
    restart_max_crashes: int = Field(
        default=5, ge=1, description="`optimlab up` restarts a crashed child (after 1, 2, 4 "
                                     "... s) until its crash this many in a row (each "
                                     "sooner than restart_stable_seconds), then stops.")
    max_request_bytes: int = Field(
        default=16 * 1024 * 1024, gt=0,
        description="Largest request body (a multipart upload: max_upload_bytes and its form "
                    "around it); refused before it is parsed.")
    max_job_seconds: float | None = Field(
        default=None, gt=0, description="Wall time a job's run may take; past it the job "
                                        "fails, its metrics kept. Default: no limit.")
    max_sweep_jobs: int = Field(default=5000, ge=1,
                                description="Most jobs one sweep may generate (points x seeds).")
    max_fused_jobs: int = Field(default=128, ge=2,
                                description="Most jobs of a sweep one fused task trains.")
    max_upload_bytes: int = Field(default=32 * 1024 * 1024, gt=0,
                                  description="Largest data set file POST /v1/datasets takes.")
    checkpoint_url: str | None = Field(
        default=None, description="Where runs keep checkpoints: a folder or any fsspec URL "
                                  "(shared by all hosts); default: data_dir/checkpoints.")
    auth: Literal["required", "off"] = Field(
        default="required", description="required: every /v1 request needs an API key "
        "(Authorization: Bearer); off: every request acts as one local admin. `optimlab up` "
        "bound to a loopback address defaults to off.")
    quota_running_jobs: int | None = Field(
        default=None, ge=0, description="Per owner: a submission is refused (429) while the "
                                        "owner has this many running jobs; 0/None: unlimited.")
    quota_queued_jobs: int | None = Field(
        default=10_000, ge=0, description="Per owner: most queued jobs (429 past it; a sweep "
                                          "that would pass it is refused whole); 0/None: "
                                          "unlimited.")
    quota_stored_points: int | None = Field(
        default=1_000_000_000, ge=0, description="Per owner: no new jobs (403) once its jobs "
                                                 "store this many metric points; 0/None: "
                                                 "unlimited.")
    checkpoint_seconds: float = Field(
        default=60.0, gt=0, description="How often a job checkpoints when its spec says "
                                        "neither checkpoint_every nor checkpoint_seconds.")
    checkpoint_min_seconds: float = Field(
        default=1.0, ge=0, description="The shortest time between two checkpoints of a run: "
                                       "a spec's checkpoint_seconds below it is refused, and "
                                       "its checkpoint_every never checkpoints more often.")
    checkpoint_min_steps: int = Field(
        default=1, ge=1, description="The smallest checkpoint_every a spec may ask for.")
    checkpoint_keep: int = Field(
        default=3, ge=1, description="How many of a job's newest checkpoints are kept.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="At INFO, a job logs its start and its end; DEBUG adds "
                                    "Celery's per-task lines.")
    access_log: bool = Field(default=False, description="uvicorn logs a line per request.")

    @field_validator("log_level", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        # OPTIMLAB_LOG_LEVEL=info is as meant as INFO; refusing it stops every command.
        return value.upper() if isinstance(value, str) else value

    @field_validator("auth", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("database_url", "broker_url", "checkpoint_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # OPTIMLAB_DATABASE_URL= (set but empty) means "use the embedded default".
        return None if value == "" else value

    @property
    def limits(self) -> Limits:
        return Limits.model_validate(self.model_dump(include=set(Limits.model_fields)))

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'optimlab.db'}"

    @property
    def checkpoints(self) -> str:
        return self.checkpoint_url or str(self.data_dir / "checkpoints")

    @property
    def broker(self) -> str:
        return self.broker_url or EMBEDDED_BROKER

    @property
    def embedded_broker(self) -> bool:
        return self.broker.startswith("filesystem:")

    @property
    def broker_folder(self) -> Path:
        return self.data_dir / "broker"

    def queue(self, kind: str) -> str:
        return f"{self.queue_prefix}{kind}"

    def broker_transport_options(self) -> dict[str, Any]:
        if self.embedded_broker:
            messages = str(self.broker_folder / "messages")
            return {
                "data_folder_in": messages,
                "data_folder_out": messages,
                "control_folder": str(self.broker_folder / "control"),
                "processing_folder": str(self.broker_folder / "processing"),
                "polling_interval": self.broker_poll_seconds,
            }
        return {"visibility_timeout": self.visibility_timeout_seconds}


@functools.cache
def get_settings() -> Settings:
    return Settings()
