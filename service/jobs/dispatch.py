"""How the use cases reach the queue, without knowing it is Celery."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from optimlab.service.settings import Settings


class Dispatcher(Protocol):
    def dispatch(self, job_id: str, queue: str) -> None:
        """Ask a worker on ``queue`` to run the job."""

    def dispatch_fused(self, job_ids: list[str], queue: str) -> None:
        """Ask a worker on ``queue`` to run these jobs as one fused run."""

    def ping(self, timeout: float = 2.0) -> None:
        """Raise when the broker cannot be reached."""


def celery_dispatcher(settings: Settings) -> Dispatcher:
    """The dispatcher of a deployment: Celery on the configured broker."""
    # imported here: Celery takes a while to import, and tests pass their own dispatcher
    from optimlab.worker.celery_app import CeleryDispatcher, create_celery

    return CeleryDispatcher(create_celery(settings))
