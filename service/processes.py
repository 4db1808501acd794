"""Run child processes as one unit: start them, watch them, stop every one of them.

Each child gets its own session (so a terminal's Ctrl-C reaches only the
supervisor, which then stops the children in order) and, on Linux, dies with
the supervisor even if the supervisor is killed outright.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChildSpec:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    stop_signal: int = signal.SIGTERM


def optimlab_command(*args: str) -> list[str]:
    """The CLI run with this interpreter (no reliance on PATH)."""
    return [sys.executable, "-m", "optimlab.service.cli", *args]


class Supervisor:
    def __init__(self, children: list[ChildSpec], *, cwd: Path | None = None,
                 grace_seconds: float = 7.0) -> None:
        self.specs = children
        self.cwd = cwd
        self.grace_seconds = grace_seconds
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.stop_requested = threading.Event()

    def run(self) -> int:
        """Start the children; return when one exits or SIGINT/SIGTERM arrives, all stopped."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._request_stop)
        try:
            for spec in self.specs:
                self.start(spec)
            while not self.stop_requested.wait(0.2):
                exited = [(n, p.returncode) for n, p in self.processes.items()
                          if p.poll() is not None]
                if exited:
                    name, code = exited[0]
                    log.error("%s exited with status %s; stopping the others", name, code)
                    return code or 1
            return 0
        finally:
            self.stop()

    def start(self, spec: ChildSpec) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            spec.argv, env={**os.environ, **spec.env}, cwd=self.cwd, start_new_session=True,
            preexec_fn=_die_with_parent)
        self.processes[spec.name] = process
        log.info("started %s (pid %d)", spec.name, process.pid)
        return process

    def stop(self) -> None:
        """Ask each child to stop, wait up to the grace period, then kill what is left."""
        for spec in self.specs:
            process = self.processes.get(spec.name)
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(spec.stop_signal)
        deadline = time.monotonic() + self.grace_seconds
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
        for name, process in self.processes.items():
            # The whole session goes: the child and anything it started (Celery's pool).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            if process.poll() is None:
                log.warning("%s did not stop in %.0f s; killed", name, self.grace_seconds)
            process.wait()

    def _request_stop(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        self.stop_requested.set()


def _die_with_parent() -> None:
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
