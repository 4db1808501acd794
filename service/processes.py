"""Run child processes as one unit: start them, watch them, restart a crashed one, stop all.

Each child gets its own session (so a terminal's Ctrl-C reaches only the
supervisor, which then stops the children in order) and, on Linux, dies with
the supervisor even if the supervisor is killed outright.

A child that exits while the supervisor runs crashed (nothing else stops one): what is
left of its session goes too (a killed Celery parent leaves its pool children behind),
and it is started again after a delay that doubles with each crash in a row. A child
that stayed up for ``stable_seconds`` starts its count afresh; one that crashes
``max_crashes`` times in a row, each time sooner than that, is given up on: the
supervisor stops the others and exits with status 1, so that whatever runs it (systemd,
a terminal) sees the failure instead of a service that half works.
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


@dataclass(frozen=True)
class RestartPolicy:
    first_delay: float = 1.0
    max_delay: float = 30.0
    stable_seconds: float = 60.0
    max_crashes: int = 5  # the crash in a row that gives up; 0 or 1: never restart

    def delay(self, crashes: int) -> float | None:
        """Seconds to wait before start number ``crashes + 1``; None: give up."""
        if crashes >= self.max_crashes or crashes < 1:
            return None
        return float(min(self.max_delay, self.first_delay * 2 ** (crashes - 1)))


NEVER = RestartPolicy(max_crashes=0)


@dataclass
class _Child:
    """What the supervisor knows of one child: its process, since when, its crashes."""

    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    crashes: int = 0  # in a row, each sooner than the policy's stable_seconds
    restart_at: float | None = None
    starts: int = 0


def optimlab_command(*args: str) -> list[str]:
    """The CLI run with this interpreter (no reliance on PATH)."""
    return [sys.executable, "-m", "optimlab.service.cli", *args]


class Supervisor:
    def __init__(self, children: list[ChildSpec], *, cwd: Path | None = None,
                 grace_seconds: float = 7.0, restart: RestartPolicy = NEVER) -> None:
        self.specs = children
        self.cwd = cwd
        self.grace_seconds = grace_seconds
        self.policy = restart
        self.children = {spec.name: _Child(spec) for spec in children}
        self.stop_requested = threading.Event()

    @property
    def processes(self) -> dict[str, subprocess.Popen[bytes]]:
        return {name: c.process for name, c in self.children.items() if c.process is not None}

    def starts(self, name: str) -> int:
        return self.children[name].starts

    def run(self) -> int:
        """Start the children and keep them up; return when SIGINT/SIGTERM arrives (0) or a
        child is given up on (its status, or 1), every child stopped."""
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, self._request_stop)
        try:
            for spec in self.specs:
                self.start(spec)
            while not self.stop_requested.wait(0.2):
                code = self._tend()
                if code is not None:
                    return code
            return 0
        finally:
            self.stop()

    def start(self, spec: ChildSpec) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            spec.argv, env={**os.environ, **spec.env}, cwd=self.cwd, start_new_session=True,
            preexec_fn=_die_with_parent)
        child = self.children[spec.name]
        child.process, child.started, child.restart_at = process, time.monotonic(), None
        child.starts += 1
        log.info("started %s (pid %d)", spec.name, process.pid)
        return process

    def _tend(self) -> int | None:
        """Restart what is due; note what exited. A status to exit with when giving up."""
        now = time.monotonic()
        for child in self.children.values():
            if child.restart_at is not None and now >= child.restart_at:
                self.start(child.spec)
                continue
            process = child.process
            if process is None or child.restart_at is not None or process.poll() is None:
                continue
            code = self._crashed(child, process, now)
            if code is not None:
                return code
        return None

    def _crashed(self, child: _Child, process: subprocess.Popen[bytes], now: float
                 ) -> int | None:
        name, uptime = child.spec.name, now - child.started
        _kill_session(process)
        child.crashes = 1 if uptime >= self.policy.stable_seconds else child.crashes + 1
        delay = self.policy.delay(child.crashes)
        if delay is None:
            if self.policy.max_crashes:
                log.error("%s exited with status %s after %.1f s: %d crashes in a row, each "
                          "within %.0f s of its start; giving up, stopping the others", name,
                          process.returncode, uptime, child.crashes,
                          self.policy.stable_seconds)
            else:
                log.error("%s exited with status %s; stopping the others", name,
                          process.returncode)
            return process.returncode or 1
        log.warning("%s (pid %d) exited with status %s after %.1f s; restarting it in %.1f s "
                    "(crash %d in a row of at most %d)", name, process.pid, process.returncode,
                    uptime, delay, child.crashes, self.policy.max_crashes)
        child.restart_at = now + delay
        return None

    def stop(self) -> None:
        """Ask each child to stop, wait up to the grace period, then kill what is left."""
        for spec in self.specs:
            process = self.children[spec.name].process
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(spec.stop_signal)
        deadline = time.monotonic() + self.grace_seconds
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
        for name, process in self.processes.items():
            if process.poll() is None:
                log.warning("%s did not stop in %.0f s; killed", name, self.grace_seconds)
            _kill_session(process)

    def _request_stop(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        self.stop_requested.set()


def _kill_session(process: subprocess.Popen[bytes]) -> None:
    # The whole session goes: the child and anything it started (Celery's pool).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _die_with_parent() -> None:
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
