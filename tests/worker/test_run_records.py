"""What the worker records around a run besides the engine's metrics, called directly against
the real databases: the wall_time series, the run's log lines, the process's figures, and
fencing against a job deleted under a still-running worker."""

from __future__ import annotations

import itertools
import logging
import uuid
import warnings
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from optimlab.service.db import job_logs, jobs, metrics
from optimlab.service.db.models import JobLog, MetricChunk
from optimlab.service.jobs.callers import LOCAL
from optimlab.service.jobs.cancel import cancel_job
from optimlab.service.jobs.deletion import delete_job
from optimlab.worker import alone, fused_run
from optimlab.worker.execution import execute
from optimlab.worker.run_log import capturing
from optimlab.worker.sql_sink import WALL_TIME
from tests.conftest import Stack
from tests.seed_table import SEED_SPEC
from tests.stacks import wait_for
from tests.worker.test_execution import LONG_SPEC, insert, job, run, start

# A valid spec that torch warns about at every step: the model's output is a scalar, the
# target a vector of one (mse_loss broadcasts them, "Using a target size ...").
WARNING_SPEC: dict[str, Any] = {
    **SEED_SPEC, "model": {"kind": "expression", "expression": "x**2",
                           "parameters": {"x": 1.0}}}
PROCESS_FIELDS = {"peak_rss_bytes", "cpu_seconds", "cpu_percent", "gpu_peak_memory_bytes",
                  "gpu_utilization_percent", "shared_by"}


def lines(db: Engine, job_id: uuid.UUID) -> list[JobLog]:
    with db.connect() as conn:
        return job_logs.read_lines(conn, job_id, attempt=None, min_level=0, limit=10_000)


def loss_batch_ends(db: Engine, job_id: uuid.UUID) -> list[int]:
    """The last step of each stored batch (one loss chunk per batch)."""
    query = (select(MetricChunk.last_step)
             .where(MetricChunk.job_id == job_id, MetricChunk.name == "loss")
             .order_by(MetricChunk.first_step))
    with db.connect() as conn:
        return [int(step) for step in conn.scalars(query)]


def wall_time(db: Engine, job_id: uuid.UUID) -> tuple[list[int], list[float]]:
    with db.connect() as conn:
        (found,) = metrics.read_series(conn, job_id, [WALL_TIME])
    return found.steps, found.values


def test_wall_time_has_a_point_per_batch_rising_to_the_runs_wall_seconds(
        db: Engine, stack: Stack) -> None:
    job_id = insert(db, {**SEED_SPEC, "steps": 40_000})  # several 0.2 s batches

    run(db, stack, job_id)

    done = job(db, job_id)
    assert done.summary is not None
    steps, values = wall_time(db, job_id)
    assert len(steps) > 1
    assert steps == loss_batch_ends(db, job_id)
    assert steps[-1] == 39_999
    assert all(a < b for a, b in itertools.pairwise(values))
    assert values[0] > 0
    assert values[-1] == done.summary["wall_seconds"]


def test_a_fused_run_writes_each_job_its_wall_time(db: Engine, stack: Stack) -> None:
    ids = [insert(db, {**SEED_SPEC, "steps": 30_000,
                       "optimizer": {"name": "SGD", "lr": lr}}) for lr in (0.001, 0.002)]

    execute([str(i) for i in ids], db=db, settings=stack.settings, worker="w")

    for job_id in ids:
        done = job(db, job_id)
        assert done.summary is not None
        assert done.summary["fusion"]["fused_with"] == 1
        steps, values = wall_time(db, job_id)
        assert steps == loss_batch_ends(db, job_id)
        assert steps[-1] == 29_999
        assert all(a < b for a, b in itertools.pairwise(values))
        assert values[-1] == done.summary["wall_seconds"]


def test_a_fused_tasks_jobs_beat_while_the_probe_decides(db: Engine, stack: Stack,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """Planning (the exactness probe) takes seconds on a busy machine: without beats the
    monitor took the claimed jobs for abandoned and ran them again, one by one."""
    ids = [insert(db, {**SEED_SPEC, "optimizer": {"name": "SGD", "lr": lr}})
           for lr in (0.01, 0.02)]
    plan = fused_run._fusion_plan
    beaten: list[bool] = []

    def slow_plan(claims: list[jobs.Claim], db: Engine, **options: Any) -> Any:
        claimed_at = [job(db, c.job_id).heartbeat_at for c in claims]
        beaten.append(bool(wait_for(lambda: all(
            (beat := job(db, c.job_id).heartbeat_at) is not None and beat > at
            for c, at in zip(claims, claimed_at, strict=True) if at is not None),
            timeout=20, what="heartbeats during the plan")))
        return plan(claims, db, **options)

    monkeypatch.setattr(fused_run, "_fusion_plan", slow_plan)
    execute([str(i) for i in ids], db=db, settings=stack.settings, worker="w")

    assert beaten == [True]
    assert [job(db, i).summary["fusion"]["fused_with"] for i in ids] == [1, 1]  # type: ignore[index]


def test_a_runs_torch_warning_start_and_end_are_kept_with_the_job(db: Engine,
                                                                 stack: Stack) -> None:
    first, second = insert(db, WARNING_SPEC), insert(db, WARNING_SPEC)

    run(db, stack, first)
    run(db, stack, second)  # Python shows a warning once per process: each run keeps it

    for job_id in (first, second):
        found = lines(db, job_id)
        assert [(line.level, line.logger) for line in found] == [
            (logging.INFO, "optimlab.worker.execution"), (logging.WARNING, "py.warnings"),
            (logging.INFO, "optimlab.worker.execution")]
        start_line, warning, end_line = found
        assert start_line.message == f"job {job_id}: run 1 starts on test-worker"
        assert "UserWarning: Using a target size (torch.Size([1])) that is different to the " \
               "input size (torch.Size([]))" in warning.message
        assert end_line.message == f"job {job_id}: run 1 ends succeeded (completed after 20 " \
                                   "steps)"
        assert {line.attempt for line in found} == {1}
        assert start_line.at <= warning.at <= end_line.at


def test_a_failed_runs_error_and_traceback_are_kept(db: Engine, stack: Stack,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: Any, **__: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(alone, "run_training", boom)
    job_id = insert(db, SEED_SPEC)

    run(db, stack, job_id)

    assert job(db, job_id).status == jobs.FAILED
    found = lines(db, job_id)
    assert [line.level for line in found] == [logging.INFO, logging.ERROR, logging.INFO]
    assert found[1].message.startswith(f"job {job_id} failed\nTraceback")
    assert found[1].message.endswith("RuntimeError: boom")
    assert found[2].message == f"job {job_id}: run 1 ends failed: RuntimeError: boom"


def test_a_fused_runs_lines_go_to_every_job_its_own_start_and_end_to_each(
        db: Engine, stack: Stack) -> None:
    specs = [{**WARNING_SPEC, "optimizer": {"name": "SGD", "lr": lr}} for lr in (0.01, 0.02)]
    ids = [insert(db, spec) for spec in specs]

    execute([str(i) for i in ids], db=db, settings=stack.settings, worker="w")

    for job_id in ids:
        found = lines(db, job_id)
        assert job(db, job_id).summary["fusion"]["fused_with"] == 1  # type: ignore[index]
        starts = [line.message for line in found if " starts on " in line.message]
        ends = [line.message for line in found if " ends " in line.message]
        assert starts == [f"job {job_id}: run 1 starts on w, fused with 1 other jobs"]
        assert ends == [f"job {job_id}: run 1 ends succeeded (completed after 20 steps)"]
        assert any("Using a target size" in line.message for line in found)


def test_a_cancelled_runs_end_line_says_so(db: Engine, stack: Stack) -> None:
    job_id = insert(db, LONG_SPEC)
    thread = start(db, stack, job_id)

    cancel_job(db=db, caller=LOCAL, job_id=job_id)
    thread.join(timeout=10)

    steps = job(db, job_id).summary["steps_done"]  # type: ignore[index]
    assert lines(db, job_id)[-1].message == \
        f"job {job_id}: run 1 ends cancelled (after {steps} steps)"


def test_a_run_keeps_its_first_lines_and_counts_the_rest() -> None:
    job_id = uuid.uuid4()
    noisy = logging.getLogger("tests.noisy")
    with capturing(max_lines=3, max_chars=10) as run_log:
        noisy.info("below WARNING, not the run's own: left out")
        for k in range(7):
            noisy.warning("warning %d with a long tail", k)
        run_log.note(noisy, job_id, "the run's own line")  # INFO, not shown here
        warnings.warn("a Python warning past the limit", UserWarning, stacklevel=1)
    taken = run_log.take(last=True)

    assert [(owner, line.message) for owner, line in taken] == [
        (None, "warning 0 … (16 more characters)"), (None, "warning 1 … (16 more characters)"),
        (None, "warning 2 … (16 more characters)"),
        (job_id, "the run's … (8 more characters)"),
        (None, "5 more lines were dropped (a run keeps at most 3)")]
    assert run_log.take(last=True) == []
    assert run_log not in logging.getLogger().handlers


def test_the_summary_has_the_process_figures_of_the_run(db: Engine, stack: Stack) -> None:
    job_id = insert(db, {**SEED_SPEC, "steps": 5000})

    run(db, stack, job_id)

    process = job(db, job_id).summary["process"]  # type: ignore[index]
    assert set(process) == PROCESS_FIELDS
    assert process["peak_rss_bytes"] > 50 * 2**20  # torch alone holds more
    assert process["cpu_seconds"] > 0
    assert 0 < process["cpu_percent"] < 100 * 64
    assert process["gpu_peak_memory_bytes"] is None  # a CPU run
    assert process["gpu_utilization_percent"] is None
    assert process["shared_by"] == 1


def test_a_fused_runs_jobs_share_the_process_figures(db: Engine, stack: Stack) -> None:
    ids = [insert(db, {**SEED_SPEC, "optimizer": {"name": "SGD", "lr": lr}})
           for lr in (0.01, 0.02, 0.03)]

    execute([str(i) for i in ids], db=db, settings=stack.settings, worker="w")

    figures = [job(db, i).summary["process"] for i in ids]  # type: ignore[index]
    assert figures[0] == figures[1] == figures[2]
    assert set(figures[0]) == PROCESS_FIELDS
    assert figures[0]["shared_by"] == 3


@pytest.mark.timeout(60)
def test_a_job_deleted_under_its_still_running_worker_stays_deleted(db: Engine,
                                                                   stack: Stack) -> None:
    job_id = insert(db, LONG_SPEC)
    thread = start(db, stack, job_id)

    # the run sees it at its next write, not yet
    cancel_job(db=db, caller=LOCAL, job_id=job_id)
    delete_job(db=db, caller=LOCAL, job_id=job_id, settings=stack.settings)
    thread.join(timeout=10)

    assert not thread.is_alive()
    with db.connect() as conn:
        assert jobs.get_job(conn, job_id) is None
        assert conn.scalar(select(func.count()).select_from(MetricChunk)
                           .where(MetricChunk.job_id == job_id)) == 0
        assert conn.scalar(select(func.count()).select_from(JobLog)
                           .where(JobLog.job_id == job_id)) == 0
