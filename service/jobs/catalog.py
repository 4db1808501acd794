"""What can be run, as the engine describes it, under the service's active limits."""

from __future__ import annotations

import functools
from typing import Any

from optimlab.worker.engine.catalog import catalog
from optimlab.worker.limits import Limits, active_limits


def describe_catalog() -> dict[str, Any]:
    return _catalog(active_limits())


@functools.cache
def _catalog(limits: Limits) -> dict[str, Any]:
    return catalog()  # its models' schemas state the active limits
