"""Whether the service can do its work: database and broker reachable, and (where the
settings ask for one) a worker consuming."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, text

from optimlab.service.db import workers
from optimlab.service.jobs.dispatch import Dispatcher
from optimlab.service.settings import Settings


@dataclass(frozen=True)
class Readiness:
    ready: bool
    database: str  # "ok", or why not
    broker: str
    workers: int  # live workers seen in the last three heartbeats


def check_readiness(*, db: Engine, dispatcher: Dispatcher, settings: Settings) -> Readiness:
    database = broker = "ok"
    live = 0
    try:
        with db.connect() as conn:
            conn.execute(text("SELECT 1"))
            within = timedelta(seconds=3 * settings.heartbeat_seconds)
            live = len(workers.live_workers(conn, within=within))
    except Exception as exc:  # any failure is an answer here, not an error
        database = f"unreachable: {type(exc).__name__}"
    try:
        dispatcher.ping(timeout=2.0)
    except Exception as exc:
        broker = f"unreachable: {type(exc).__name__}"
    ready = database == "ok" and broker == "ok" and (live > 0 or not settings.ready_requires_worker)
    return Readiness(ready=ready, database=database, broker=broker, workers=live)
