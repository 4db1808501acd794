"""Tables: jobs (the source of truth for status), their metric series and log lines, live
workers, uploaded data sets, API keys."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Naive UTC: SQLite keeps no time zone, so none is stored anywhere."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    queue: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Each run of the job increments it; writes of an older run are refused (fencing).
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(255))
    # The process that holds the running attempt (service/db/holders.py): a task redelivered
    # for a job whose holder died on this host takes it over without waiting for staleness.
    holder_host: Mapped[str | None] = mapped_column(String(255))
    holder_pid: Mapped[int | None] = mapped_column(Integer)
    holder_started: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    sweep_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("sweeps.id", ondelete="SET NULL"), index=True)
    # The sweep axes' values this job was generated with, e.g. {"optimizer.lr": 0.01}.
    sweep_point: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Who may see it: the owner of the API key that created it (None: made with auth off,
    # seen by admin keys only once auth is on).
    owner: Mapped[str | None] = mapped_column(String(200), index=True)

    __table_args__ = (Index("ix_jobs_created_at_id", "created_at", "id"),)


class JobTag(Base):
    """Tags of a job, one row each, so that filtering by tag is an indexed lookup."""

    __tablename__ = "job_tags"

    job_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)


class Sweep(Base):
    """A set of jobs generated from one base spec and axes over its fields."""

    __tablename__ = "sweeps"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), default="")
    request: Mapped[dict[str, Any]] = mapped_column(JSON)  # the SweepSpec as submitted
    size: Mapped[int] = mapped_column(Integer)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    # How the jobs were sent: {"enabled", "tasks": [[job ids]], "alone": [{job_id, reason}]}.
    fusion: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    owner: Mapped[str | None] = mapped_column(String(200), index=True)


class MetricChunk(Base):
    """Consecutive points of one series, packed: one row per series per stored batch.

    ``value_bytes`` holds the values as little-endian float64 (NaN, infinities and -0.0
    kept as they are), ``step_bytes`` the steps as little-endian int64, or NULL when they
    are every step from ``first_step`` to ``last_step``. A row per point costs the
    database a B-tree entry per number: packed, a fused sweep's 600,000 points are 600
    rows (see bench/metric_store.py).
    """

    __tablename__ = "metric_chunks"

    job_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    first_step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    last_step: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(Integer)
    step_bytes: Mapped[bytes | None] = mapped_column(LargeBinary)
    value_bytes: Mapped[bytes] = mapped_column(LargeBinary)


class JobLog(Base):
    """A log line a worker captured while it ran the job: warnings and errors of torch and
    Python, the run's start and end. ``level`` is the logging level's number."""

    __tablename__ = "job_logs"

    # SQLite numbers rows itself only for an INTEGER PRIMARY KEY.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("jobs.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime)
    level: Mapped[int] = mapped_column(Integer)
    logger: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_job_logs_job_id_id", "job_id", "id"),)


class Worker(Base):
    """A worker process that consumes queues, refreshed by its heartbeat."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    queues: Mapped[str] = mapped_column(String(255))
    device: Mapped[str] = mapped_column(String(100))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class StoredDataset(Base):
    """An uploaded data set file, keyed by the SHA-256 of its bytes.

    The bytes live in the database, not on a disk, so that the API and workers in separate
    containers share them.
    """

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(8))
    target: Mapped[str | None] = mapped_column(String(200))
    rows: Mapped[int] = mapped_column(Integer)
    features: Mapped[int] = mapped_column(Integer)
    classes: Mapped[int | None] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    owner: Mapped[str | None] = mapped_column(String(200), index=True)


class ApiKey(Base):
    """An API key: only the SHA-256 of the key is kept (a key is 32 random bytes, so a fast
    hash is enough: there is nothing to guess that a slow one would protect)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(200))
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
