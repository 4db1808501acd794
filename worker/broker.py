"""The embedded broker: kombu's filesystem transport, made safe for several processes.

Changes to kombu's transport:

* a message is written under a temporary name and renamed into place, so a
  consumer never reads a half-written file;
* a consumed message is moved into a ``processing_folder`` inside the data
  directory (kombu moves it to the system temp folder), so nothing is written
  outside the data directory;
* waiting for messages returns every quarter second, so that the worker sees
  a request to stop at once;
* declared exchanges are remembered per folder, not per process.
"""

from __future__ import annotations

import itertools
import os
import uuid
from pathlib import Path
from queue import Empty
from time import monotonic_ns
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.transport.virtual.base import BrokerState
from kombu.utils.json import dumps, loads

DRAIN_SECONDS = 0.25
_STATES: dict[str, BrokerState] = {}
_sequence = itertools.count()


class FolderChannel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        # Consumers take files in name order: a nanosecond clock shared by all
        # processes, then this process's own sequence, keep messages first-in first-out.
        name = f"{monotonic_ns():020d}-{next(_sequence):012d}-{uuid.uuid4().hex}.{queue}.msg"
        folder = Path(self.data_folder_out)
        partial = folder / f"~{name}.partial"
        try:
            partial.write_text(dumps(payload), encoding="utf-8")
            os.replace(partial, folder / name)
        except OSError as exc:
            raise ChannelError(f"Cannot add {name!r} to {folder}") from exc

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        wanted = f"{queue}.msg"
        folder = Path(self.data_folder_in)
        processing = Path(self.transport_options["processing_folder"])
        processing.mkdir(parents=True, exist_ok=True)
        for name in sorted(os.listdir(folder)):
            if name.partition(".")[2] != wanted:
                continue
            claimed = processing / f"{os.getpid()}-{name}"
            try:
                # rename is atomic: of several consumers exactly one gets the file
                os.rename(folder / name, claimed)
            except OSError:
                continue
            try:
                return loads(claimed.read_text(encoding="utf-8"))
            finally:
                claimed.unlink(missing_ok=True)
        raise Empty()


class FolderTransport(filesystem.Transport):
    Channel = FolderChannel

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)  # type: ignore[no-untyped-call]
        # kombu shares one in-memory state (declared exchanges and bindings) among
        # all folder connections of a process; keep one per folder instead, or a
        # second data directory in the same process never gets its bindings written.
        folder = str(client.transport_options.get("control_folder", ""))
        self.state = _STATES.setdefault(folder, BrokerState())

    def drain_events(  # type: ignore[override]
            self, connection: Any, timeout: float | None = None) -> Any:
        # Celery's blocking loop (used for polling transports) waits up to 2 s here
        # before it looks at its shutdown flag again; a short wait makes a warm
        # shutdown take a fraction of a second instead of seconds.
        wait = min(timeout or DRAIN_SECONDS, DRAIN_SECONDS)
        return super().drain_events(connection, timeout=wait)  # type: ignore[no-untyped-call]


TRANSPORT = f"{__name__}:FolderTransport"


def purge_messages(options: dict[str, Any]) -> int:
    """Delete every message of the folder broker (only safe while no process uses it)."""
    count = 0
    for key in ("data_folder_in", "processing_folder"):
        folder = Path(options[key])
        for path in folder.glob("*") if folder.is_dir() else ():
            path.unlink(missing_ok=True)
            count += 1
    return count


def ensure_folders(options: dict[str, Any]) -> None:
    for key in ("data_folder_in", "data_folder_out", "control_folder", "processing_folder"):
        Path(options[key]).mkdir(parents=True, exist_ok=True)
