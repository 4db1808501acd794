"""What the job use cases can refuse; the API maps each to an HTTP status."""

from __future__ import annotations


class JobNotFound(LookupError):
    def __init__(self, job_id: object) -> None:
        super().__init__(f"job {job_id} not found")


class SweepNotFound(LookupError):
    def __init__(self, sweep_id: object) -> None:
        super().__init__(f"sweep {sweep_id} not found")


class DatasetNotFound(LookupError):
    def __init__(self, dataset_id: str) -> None:
        super().__init__(f"data set {dataset_id} not found")


class QuotaExceeded(RuntimeError):
    """The owner is at one of its quotas; ``status`` is 429 (try later) or 403 (stored
    points: nothing frees them but deleting jobs)."""

    def __init__(self, message: str, *, quota: str, limit: int, status: int) -> None:
        super().__init__(message)
        self.quota = quota
        self.limit = limit
        self.status = status


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
