"""The optimlab API from Python: ``Client``, its errors and event types.

>>> from optimlab.client import Client
>>> with Client("http://127.0.0.1:8000") as c:
...     job = c.submit("examples/seed_sgd_fixed_lr.json")
...     done = c.wait(job["id"], progress=lambda p: print(p.step, p.steps, p.loss))

Names are imported on first use, so that ``optimlab --help`` (whose commands live in
``optimlab.client.cli``) does not pay for httpx.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optimlab.client.client import DEFAULT_SERVER, Client
    from optimlab.client.errors import (
        Conflict,
        MissingDependency,
        NotFound,
        OptimlabError,
        QuotaExceeded,
        ServerUnavailable,
        SpecRefused,
        Unauthorized,
        WaitTimeout,
    )
    from optimlab.client.events import Event, Reconnect
    from optimlab.client.progress import Progress, SweepProgress

_WHERE = {
    "Client": "client", "DEFAULT_SERVER": "client",
    "OptimlabError": "errors", "SpecRefused": "errors", "NotFound": "errors",
    "Conflict": "errors", "ServerUnavailable": "errors", "WaitTimeout": "errors",
    "MissingDependency": "errors", "Unauthorized": "errors", "QuotaExceeded": "errors",
    "Event": "events", "Reconnect": "events",
    "Progress": "progress", "SweepProgress": "progress",
}
__all__ = [
    "DEFAULT_SERVER",
    "Client",
    "Conflict",
    "Event",
    "MissingDependency",
    "NotFound",
    "OptimlabError",
    "Progress",
    "QuotaExceeded",
    "Reconnect",
    "ServerUnavailable",
    "SpecRefused",
    "SweepProgress",
    "Unauthorized",
    "WaitTimeout",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
