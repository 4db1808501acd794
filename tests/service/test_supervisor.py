"""The supervisor's restart policy, with real short-lived child processes."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from optimlab.service.processes import ChildSpec, RestartPolicy, Supervisor
from tests.stacks import wait_for

QUICK = {"first_delay": 0.05, "max_delay": 0.2}


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


@pytest.fixture
def in_background() -> Iterator[list[Supervisor]]:
    """Supervisors run in a thread (no signal handlers), stopped when the test ends."""
    started: list[Supervisor] = []
    yield started
    for supervisor in started:
        supervisor.stop_requested.set()


def run_in_thread(supervisor: Supervisor, running: list[Supervisor]) -> tuple[
        threading.Thread, list[int]]:
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(supervisor.run()), daemon=True)
    running.append(supervisor)
    thread.start()
    return thread, result


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_the_delay_doubles_up_to_its_cap_and_the_last_crash_gives_up() -> None:
    policy = RestartPolicy(first_delay=1, max_delay=5, max_crashes=6)
    assert [policy.delay(n) for n in range(1, 7)] == [1, 2, 4, 5, 5, None]
    assert RestartPolicy(max_crashes=1).delay(1) is None


def test_a_child_that_keeps_crashing_is_restarted_then_given_up_on(
        caplog: pytest.LogCaptureFixture) -> None:
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    supervisor = Supervisor([ChildSpec("crasher", python("raise SystemExit(3)"))],
                            restart=RestartPolicy(**QUICK, stable_seconds=60, max_crashes=4))
    try:
        with caplog.at_level(logging.INFO, logger="optimlab.service.processes"):
            code = supervisor.run()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)

    assert code == 3
    assert supervisor.starts("crasher") == 4
    restarts = [r.message for r in caplog.records if "restarting it in" in r.message]
    assert len(restarts) == 3
    assert "4 crashes in a row" in caplog.records[-1].message
    assert "giving up" in caplog.records[-1].message


def test_a_crashed_child_comes_back_and_the_others_run_on(
        tmp_path: Path, in_background: list[Supervisor]) -> None:
    marker = tmp_path / "crashed-once"
    flaky = python(f"import pathlib, sys, time\nm = pathlib.Path({str(marker)!r})\n"
                   "if not m.exists():\n    m.touch()\n    sys.exit(1)\ntime.sleep(60)")
    supervisor = Supervisor([ChildSpec("steady", python("import time; time.sleep(60)")),
                             ChildSpec("flaky", flaky)],
                            restart=RestartPolicy(**QUICK, max_crashes=2))
    thread, result = run_in_thread(supervisor, in_background)
    wait_for(lambda: supervisor.starts("flaky") == 2, timeout=20, what="a restart")
    steady = supervisor.processes["steady"].pid
    flaky_again = supervisor.processes["flaky"].pid
    wait_for(lambda: alive(flaky_again), timeout=5, what="the restarted child")

    supervisor.stop_requested.set()
    thread.join(timeout=20)

    assert result == [0]
    assert supervisor.starts("steady") == 1
    assert not alive(steady)
    assert not alive(flaky_again)


def test_a_child_that_stayed_up_long_enough_starts_its_count_afresh(
        in_background: list[Supervisor]) -> None:
    # Two crashes in a row would give up; each run lives past stable_seconds first.
    supervisor = Supervisor([ChildSpec("slow", python("import time; time.sleep(0.4); exit(1)"))],
                            restart=RestartPolicy(**QUICK, stable_seconds=0.2, max_crashes=2))
    thread, result = run_in_thread(supervisor, in_background)
    wait_for(lambda: supervisor.starts("slow") >= 4 or result, timeout=30,
             what="four starts")
    supervisor.stop_requested.set()
    thread.join(timeout=20)

    assert result == [0]
    assert supervisor.starts("slow") >= 4


def test_a_killed_child_takes_what_it_started_with_it(
        tmp_path: Path, in_background: list[Supervisor]) -> None:
    # As a SIGKILLed Celery parent would leave its pool child: the restart clears it first.
    pid_file = tmp_path / "grandchild.pid"
    parent = python("import pathlib, subprocess, sys, time\n"
                    "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
                    f"pathlib.Path({str(pid_file)!r}).write_text(str(p.pid))\ntime.sleep(60)")
    supervisor = Supervisor([ChildSpec("parent", parent)],
                            restart=RestartPolicy(**QUICK, max_crashes=3))
    thread, result = run_in_thread(supervisor, in_background)
    wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=20, what="a grandchild")
    grandchild = int(pid_file.read_text())
    pid_file.unlink()

    os.kill(supervisor.processes["parent"].pid, signal.SIGKILL)
    wait_for(lambda: supervisor.starts("parent") == 2, timeout=20, what="a restart")
    wait_for(lambda: not alive(grandchild), timeout=5, what="the grandchild to go")
    supervisor.stop_requested.set()
    thread.join(timeout=20)

    assert result == [0]
