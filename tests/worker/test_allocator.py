"""The worker's allocator thresholds: set through glibc where it is there, else nothing."""

from __future__ import annotations

import ctypes.util
import platform

import pytest

from optimlab.worker import allocator


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_both_thresholds() -> None:
    assert allocator.keep_freed_memory() is True


def test_without_a_c_library_nothing_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    assert allocator.keep_freed_memory() is False
