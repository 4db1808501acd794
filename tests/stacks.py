"""Helpers shared by tests that look inside the real stack."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import redis

from tests.conftest import Stack

T = TypeVar("T")


def queued_messages(stack: Stack, kind: str = "cpu") -> int:
    """Messages waiting in a queue of the stack's broker, read from the broker itself."""
    queue = stack.settings.queue(kind)
    if stack.kind == "embedded":
        folder = stack.settings.broker_folder / "messages"
        return sum(1 for p in folder.iterdir() if p.name.endswith(f".{queue}.msg"))
    assert stack.settings.broker_url is not None
    return int(redis.Redis.from_url(stack.settings.broker_url).llen(queue))


def wait_for(check: Callable[[], T | None], *, timeout: float, interval: float = 0.02,
             what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
