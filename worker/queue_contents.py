"""What the broker holds: the job ids its waiting (and unacknowledged) messages name.

The reconciler (worker/recovery.resend_lost) compares them with the job table to
find queued jobs whose message was lost. Read straight from the broker's storage: Redis
lists and the ``unacked`` hash, or the embedded broker's message files.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from celery import Celery

from optimlab.service.settings import Settings

log = logging.getLogger(__name__)


class CeleryQueueContents:
    def __init__(self, app: Celery, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def held_job_ids(self, queues: list[str]) -> set[str]:
        raw = self._folder(queues) if self.settings.embedded_broker else self._redis(queues)
        return {job_id for payload in raw for job_id in _job_ids(payload)}

    def declare_queues(self) -> None:
        # kombu remembers what a connection declared and never declares it again; a flushed
        # Redis has forgotten the bindings, and messages sent meanwhile would go nowhere.
        with self.app.connection_for_write() as connection:
            channel = connection.default_channel
            for queue in self.app.conf.task_queues:
                queue.bind(channel).declare()

    def _redis(self, queues: list[str]) -> Iterator[Any]:
        with self.app.connection_for_read() as connection:
            channel: Any = connection.default_channel
            client = channel.client
            for queue in queues:
                for priority in channel.priority_steps:
                    for raw in client.lrange(channel._q_for_pri(queue, priority), 0, -1):
                        yield _loads(raw)
            # One hash for all queues: [payload, exchange, routing key], and our routing
            # keys are the queue names.
            for raw in client.hvals(channel.unacked_key):
                entry = _loads(raw)
                if isinstance(entry, list) and len(entry) == 3 and entry[2] in queues:
                    yield entry[0]

    def _folder(self, queues: list[str]) -> Iterator[Any]:
        options = self.settings.broker_transport_options()
        wanted = {f"{queue}.msg" for queue in queues}
        for key in ("data_folder_in", "processing_folder"):
            folder = Path(options[key])
            for path in folder.iterdir() if folder.is_dir() else ():
                # "<time>-<seq>-<uuid>.<queue>.msg", or "<pid>-" before it while consumed
                if path.name.partition(".")[2] in wanted:
                    try:
                        yield _loads(path.read_bytes())
                    except OSError:  # consumed meanwhile
                        continue


def _loads(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _job_ids(payload: Any) -> Iterable[str]:
    """The job ids a task message names: ``[job_id]`` or ``[[job ids]]`` (a fused task)."""
    try:
        body = payload["body"]
        if payload.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        log.debug("a message in the broker is not a task of ours; ignored")
        return ()
    first = args[0] if args else None
    if isinstance(first, str):
        return (first,)
    if isinstance(first, list):
        return tuple(item for item in first if isinstance(item, str))
    return ()
