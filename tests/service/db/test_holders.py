"""Whether a job's holder process lives: this process, a dead one, a reused pid."""

from __future__ import annotations

import subprocess
import sys

from optimlab.service.db.holders import holder_gone, host_key, this_process


def test_this_process_is_alive() -> None:
    me = this_process()
    assert holder_gone(me.host, me.pid, me.started) is False


def test_a_process_that_exited_is_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert holder_gone(host_key(), child.pid, 0.0) is True


def test_a_reused_pid_is_not_its_old_holder() -> None:
    me = this_process()
    assert holder_gone(me.host, me.pid, me.started - 3600) is True


def test_nothing_is_told_of_another_host_or_an_unknown_holder() -> None:
    me = this_process()
    assert holder_gone("elsewhere/pid:[1]", me.pid, me.started) is None
    assert holder_gone(None, None, None) is None
