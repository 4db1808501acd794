"""One worker per stack for a module's tests that only need their jobs run (the modules
that stop, kill or cut off workers start their own). Such a module says so with::

    @pytest.fixture
    def stack(shared_worker_stack: Stack) -> Stack:
        return shared_worker_stack
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from optimlab.service.db.connection import make_engine
from tests.conftest import Stack, stack_of
from tests.e2e.test_worker_stack import start_worker
from tests.processes import stop


@pytest.fixture(scope="module", params=["embedded", "postgres"])
def module_stack(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack_of(request.param, tmp_path_factory.mktemp("stack"), request) as stack:
        yield stack


@pytest.fixture(scope="module")
def module_worker(module_stack: Stack, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[subprocess.Popen[bytes]]:
    """``optimlab worker`` on the module's stack, consuming from the first test to the last."""
    db = make_engine(module_stack.settings.database)
    try:
        worker = start_worker(module_stack, db, tmp_path_factory.mktemp("worker") / "log")
        yield worker
        stop(worker)
    finally:
        db.dispose()


@pytest.fixture
def shared_worker_stack(module_stack: Stack,
                        module_worker: subprocess.Popen[bytes]) -> Stack:
    """The module's stack, its worker alive: a module whose ``stack`` is this one has its
    tests' ``stack``, ``db`` and ``client`` on it."""
    assert module_worker.poll() is None, f"the module's worker exited ({module_worker.returncode})"
    return module_stack
