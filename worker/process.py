"""Per-process state of a worker: database engines are never shared across fork."""

from __future__ import annotations

from sqlalchemy import Engine

from optimlab.service.db.connection import make_engine

_engines: dict[str, Engine] = {}


def process_engine(url: str) -> Engine:
    """This process's Engine for ``url``, created on first use."""
    if url not in _engines:
        _engines[url] = make_engine(url)
    return _engines[url]


def forget_inherited_engines() -> None:
    """Called in each pool child after fork: drop, without closing, the parent's connections."""
    for db in _engines.values():
        db.dispose(close=False)
    _engines.clear()
