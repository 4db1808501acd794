"""The embedded broker: kombu's filesystem transport, made safe for several processes.

Three changes to kombu's transport:

* a message is written under a temporary name and renamed into place, so a
  consumer never reads a half-written file;
* a consumed message is moved into a ``processing_folder`` inside the data
  directory (kombu moves it to the system temp folder), so nothing is written
  outside the data directory;
* waiting for messages returns every quarter second, so that the worker sees
  a request to stop at once.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from queue import Empty
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.json import dumps, loads

DRAIN_SECONDS = 0.25


class FolderChannel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000):015d}_{uuid.uuid4()}.{queue}.msg"
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

    def drain_events(  # type: ignore[override]
            self, connection: Any, timeout: float | None = None) -> Any:
        # Celery's blocking loop (used for polling transports) waits up to 2 s here
        # before it looks at its shutdown flag again; a short wait makes a warm
        # shutdown take a fraction of a second instead of seconds.
        wait = min(timeout or DRAIN_SECONDS, DRAIN_SECONDS)
        return super().drain_events(connection, timeout=wait)  # type: ignore[no-untyped-call]


TRANSPORT = f"{__name__}:FolderTransport"


def ensure_folders(options: dict[str, Any]) -> None:
    for key in ("data_folder_in", "data_folder_out", "control_folder", "processing_folder"):
        Path(options[key]).mkdir(parents=True, exist_ok=True)
