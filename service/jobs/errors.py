"""What the job use cases can refuse; the API maps each to an HTTP status."""

from __future__ import annotations


class JobNotFound(LookupError):
    def __init__(self, job_id: object) -> None:
        super().__init__(f"job {job_id} not found")


class JobConflict(RuntimeError):
    """The request does not fit the job's state (e.g. cancelling a finished job)."""


class BrokerUnavailable(RuntimeError):
    """The job could not be queued."""


class InvalidCursor(ValueError):
    pass


class InvalidQuery(ValueError):
    """A query parameter the use case refused after parsing it; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
