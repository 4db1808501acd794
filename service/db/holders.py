"""Which process holds a job's run, and whether that process still lives.

A heartbeat says "someone beat recently"; it cannot say that a pool child SIGKILLed a
second ago is dead. The job row also names its holder: a host key, a pid and the
process's start time. On the same host, a pid that is gone, or that now belongs to a
process started at another time (the pid was reused), is a dead holder. On another host
nothing can be told from here.
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass

import psutil

# psutil reads start times in clock ticks (1/100 s on Linux); a float round trip through
# the database keeps them to far better than this.
_SAME_START = 0.05


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    started: float


@functools.cache
def host_key() -> str:
    """This host, as seen by its processes: the host name, and the pid namespace, so two
    containers of one name do not judge each other's pids."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}/{namespace}"[:255]


def this_process() -> Holder:
    # Not cached: a pool child forked from a parent that asked first is another process.
    pid = os.getpid()
    return Holder(host=host_key(), pid=pid, started=psutil.Process(pid).create_time())


def holder_gone(host: str | None, pid: int | None, started: float | None) -> bool | None:
    """True: the holder is dead (same host, pid gone or reused); False: it lives; None:
    unknown (another host, or no holder recorded)."""
    if host is None or pid is None or started is None or host != host_key():
        return None
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return True
        return abs(process.create_time() - started) > _SAME_START
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:  # no access: assume alive, the heartbeat decides
        return False
