"""All configuration, from ``OPTIMLAB_*`` environment variables, in one object."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EMBEDDED_BROKER = "filesystem://"


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/optimlab``, or ``~/.local/share/optimlab`` where XDG_DATA_HOME is
    unset, empty or relative (the XDG base directory rules): ``make run`` and ``optimlab
    up`` share it unless OPTIMLAB_DATA_DIR (or ``--data-dir``) says otherwise."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "optimlab"


class Settings(BaseSettings):
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
    ready_requires_worker: bool = Field(
        default=False, description="/readyz answers 503 until a worker consumes.")
    max_request_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    max_sweep_jobs: int = Field(default=5000, ge=1,
                                description="Most jobs one sweep may generate (points x seeds).")
    max_fused_jobs: int = Field(default=128, ge=2,
                                description="Most jobs of a sweep one fused task trains.")
    max_upload_bytes: int = Field(default=32 * 1024 * 1024, gt=0,
                                  description="Largest data set file POST /v1/datasets takes.")
    checkpoint_url: str | None = Field(
        default=None, description="Where runs keep checkpoints: a folder or any fsspec URL "
                                  "(shared by all hosts); default: data_dir/checkpoints.")
    checkpoint_every: int | None = Field(
        default=None, ge=1, description="A run checkpoints every this many steps (default "
                                         "for specs that do not say; unset: by time only).")
    checkpoint_seconds: float | None = Field(
        default=300.0, gt=0, description="A run checkpoints at least this often (seconds).")
    checkpoint_keep: int = Field(default=2, ge=1,
                                 description="Checkpoints kept per run (the newest ones).")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="At INFO, a job logs its start and its end; DEBUG adds "
                                    "Celery's per-task lines.")
    access_log: bool = Field(default=False, description="uvicorn logs a line per request.")

    @field_validator("log_level", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        # OPTIMLAB_LOG_LEVEL=info is as meant as INFO; refusing it stops every command.
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url", "broker_url", "checkpoint_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # OPTIMLAB_DATABASE_URL= (set but empty) means "use the embedded default".
        return None if value == "" else value

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
