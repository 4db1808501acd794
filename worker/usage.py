"""What a run cost the worker process: peak resident memory, CPU time, GPU memory and use.

The figures are the process's, measured around the run (a fused run's jobs share them:
``shared_by``). Peak RSS: on Linux the kernel's high-water mark (VmHWM) is reset when the
run starts (``/proc/self/clear_refs``) and read when it ends; where that is not permitted,
the RSS is sampled every ``SAMPLE_SECONDS`` instead. CPU: ``getrusage`` of the process (all
its threads), before and after. GPU (a run on CUDA): torch's peak allocated memory, reset at
the start, and the device's utilisation sampled by NVML through ``torch.cuda.utilization``
(null where that is unavailable).
"""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import torch

SAMPLE_SECONDS = 0.2
_PROC = Path("/proc/self")


class ProcessMeter:
    """``with ProcessMeter(cuda=device) as meter: run(); meter.figures(shared_by=n)``."""

    def __init__(self, *, cuda: torch.device | None = None) -> None:
        self.cuda = cuda
        self.rss: _Sampler | None = None  # when the high-water mark cannot be reset
        self.gpu_use: _Sampler | None = None
        self.started = self.cpu_started = 0.0
        self.ended: tuple[float, float] | None = None

    def __enter__(self) -> ProcessMeter:
        if not _reset_peak_rss():
            self.rss = _Sampler(_current_rss)
        if self.cuda is not None:
            torch.cuda.reset_peak_memory_stats(self.cuda)
            if _utilization(self.cuda) is not None:
                device = self.cuda
                self.gpu_use = _Sampler(lambda: _utilization(device))
        for sampler in self._samplers():
            sampler.start()
        self.started, self.cpu_started = time.monotonic(), _cpu_seconds()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.ended = (time.monotonic(), _cpu_seconds())
        for sampler in self._samplers():
            sampler.stop()

    def _samplers(self) -> list[_Sampler]:
        return [s for s in (self.rss, self.gpu_use) if s is not None]

    def figures(self, *, shared_by: int = 1) -> dict[str, Any]:
        """The summary's ``process``: call it after the block."""
        wall, cpu = self.ended or (time.monotonic(), _cpu_seconds())
        wall -= self.started
        cpu -= self.cpu_started
        rss = _peak_rss() if self.rss is None else int(max(self.rss.values))
        gpu_memory = None
        if self.cuda is not None:
            gpu_memory = int(torch.cuda.max_memory_allocated(self.cuda))
        gpu_use = statistics.fmean(self.gpu_use.values) if self.gpu_use and self.gpu_use.values \
            else None
        return {"peak_rss_bytes": rss, "cpu_seconds": cpu,
                "cpu_percent": 100 * cpu / wall if wall > 0 else 0.0,
                "gpu_peak_memory_bytes": gpu_memory, "gpu_utilization_percent": gpu_use,
                "shared_by": shared_by}


class _Sampler:
    """Reads a figure now, then every SAMPLE_SECONDS on a thread, and once more at the end."""

    def __init__(self, read: Callable[[], float | None]) -> None:
        self.read = read
        self.values: list[float] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="usage-sampler", daemon=True)

    def start(self) -> None:
        self._sample()
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        self._sample()

    def _run(self) -> None:
        while not self.stopped.wait(SAMPLE_SECONDS):
            self._sample()

    def _sample(self) -> None:
        value = self.read()
        if value is not None:
            self.values.append(float(value))


def _reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark of this process's RSS; False where not possible."""
    try:
        (_PROC / "clear_refs").write_text("5")
        return (_PROC / "status").exists()
    except OSError:
        return False


def _peak_rss() -> int:
    return _status_kb("VmHWM") * 1024


def _status_kb(field: str) -> int:
    for line in (_PROC / "status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(f"{field} is not in /proc/self/status")


def _current_rss() -> int:
    """The RSS now; without /proc, the peak so far of the process's whole life."""
    with contextlib.suppress(OSError):
        return int((_PROC / "statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes there, KiB elsewhere


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _utilization(device: torch.device) -> float | None:
    try:
        return float(torch.cuda.utilization(device))
    except Exception:  # no NVML (pynvml) or no permission: unknown, not an error
        return None
