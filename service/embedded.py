"""Prepare the embedded stack of `optimlab up`: one data folder, SQLite, the folder broker."""

from __future__ import annotations

import fcntl
from datetime import timedelta
from pathlib import Path
from typing import IO

from optimlab.migrations import upgrade
from optimlab.service.db.connection import make_engine
from optimlab.service.settings import Settings
from optimlab.worker.broker import purge_messages
from optimlab.worker.celery_app import CeleryDispatcher, create_celery
from optimlab.worker.recovery import requeue_orphans


class DataDirInUse(RuntimeError):
    pass


def lock_data_dir(folder: Path) -> IO[bytes]:
    """Hold the folder for this process's lifetime: two `up`s on one folder would fight."""
    handle = (folder / "optimlab.lock").open("wb")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DataDirInUse(f"{folder} is in use by another `optimlab up`") from None
    return handle


def prepare(settings: Settings) -> None:
    """Migrate, then rebuild the queue from the job table, oldest job first.

    No worker runs yet, so whatever is running or queued was left by the last run; the
    job table is the truth (a job interrupted by the last stop runs before the ones
    submitted after it).
    """
    upgrade(settings.database)
    purge_messages(settings.broker_transport_options())
    db = make_engine(settings.database)
    requeue_orphans(db, CeleryDispatcher(create_celery(settings)),
                    stale_after=timedelta(0), include_queued=True)
    db.dispose()
