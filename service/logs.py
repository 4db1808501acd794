"""How the optimlab processes log: one format, two lines per job at INFO.

At INFO a job gives its run's start and its end with the outcome (worker/execution.py).
Libraries log more for every job at INFO: Celery a "Task ... received" and a "... succeeded
in" line per task, uvicorn a line per request. Celery's per-task loggers are raised to
WARNING unless ``OPTIMLAB_LOG_LEVEL`` is DEBUG (their errors still show); uvicorn's access
lines come only with ``OPTIMLAB_ACCESS_LOG`` (service/cli.py).
"""

from __future__ import annotations

import logging
import sys

from optimlab.service.settings import Settings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
PER_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")


def configure_logging(settings: Settings) -> None:
    level = logging.getLevelNamesMapping()[settings.log_level]
    logging.basicConfig(level=level, stream=sys.stderr, format=FORMAT)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    if level > logging.DEBUG:
        for name in PER_TASK_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("kombu.connection").addFilter(_without_default_hostname)


def _without_default_hostname(record: logging.LogRecord) -> bool:
    # kombu warns on every connection to a broker URL without a host; the embedded folder
    # broker's ("filesystem://") has none by design.
    return not str(record.msg).startswith("No hostname was supplied")
