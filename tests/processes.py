"""Start optimlab's own commands as real processes, and stop them, for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil

from tests.stacks import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def optimlab(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
             log: Path | None = None) -> subprocess.Popen[bytes]:
    output = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen([sys.executable, "-m", "optimlab.service.cli", *args],
                            env=env or dict(os.environ), cwd=cwd, stdout=output,
                            stderr=subprocess.STDOUT)


def descendants(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    return [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]


def gone(processes: list[psutil.Process]) -> bool:
    def alive(p: psutil.Process) -> bool:
        try:
            return p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    return not any(alive(p) for p in processes)


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM,
         timeout: float = 15) -> float:
    """Signal ``process``; wait for it and every process it started; return seconds taken."""
    family = descendants(process) if process.poll() is None else []
    started = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(sig)
    try:
        wait_for(lambda: process.poll() is not None and gone(family), timeout=timeout,
                 interval=0.05, what="the processes to exit")
    finally:
        for p in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        process.wait()
    return time.monotonic() - started


def wait_ready(base_url: str, process: subprocess.Popen[bytes], log: Path | None = None,
               timeout: float = 90) -> None:
    def ready() -> bool:
        if process.poll() is not None:
            detail = log.read_text()[-3000:] if log and log.exists() else ""
            raise AssertionError(f"process exited with {process.returncode}\n{detail}")
        try:
            return httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, timeout=timeout, interval=0.1, what=f"{base_url}/readyz")


@contextlib.contextmanager
def running(process: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield process
    finally:
        if process.poll() is None:
            stop(process)
