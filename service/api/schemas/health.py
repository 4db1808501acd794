"""The body of /readyz."""

from __future__ import annotations

from pydantic import BaseModel


class Readiness(BaseModel):
    ready: bool
    database: str
    broker: str
    workers: int
