"""Train one claimed job on its own (the engine's single-job kernel) and store its outcome:
from the newest usable checkpoint of the job (an earlier attempt's), else from step 0."""

from __future__ import annotations

import logging
import traceback
from typing import Any

import torch
from pydantic import ValidationError
from sqlalchemy import Engine

from optimlab.service.db import jobs, metrics
from optimlab.service.db.dataset_source import SqlDatasetSource
from optimlab.service.settings import Settings
from optimlab.worker.checkpoints import CheckpointStore
from optimlab.worker.engine import SpecError, TrainingSummary, run_training
from optimlab.worker.engine.devices import resolve_device
from optimlab.worker.engine.resume import ResumeError
from optimlab.worker.job_rows import finish_all
from optimlab.worker.outcomes import Outcome
from optimlab.worker.resumption import (
    StoreCheckpointer,
    checkpoint_policy,
    initial_model,
    plan_resume,
)
from optimlab.worker.run_log import capturing
from optimlab.worker.spec import JobSpec
from optimlab.worker.sql_sink import SqlJobsSink, backoff_of, finite_json
from optimlab.worker.usage import ProcessMeter

# The executor's lines (stored with each run's log) keep its name, whichever of its
# modules writes them.
log = logging.getLogger("optimlab.worker.execution")


def run_claimed(claim: jobs.Claim, *, db: Engine, settings: Settings, worker: str,
                note: dict[str, Any] | None = None) -> None:
    """Train a claimed job alone and store its outcome (``note`` joins its summary), with
    the run's log lines and what it cost the process (the caller's heartbeat covers it)."""
    with capturing() as run_log:
        run_log.note(log, claim.job_id, "job %s: run %d starts on %s", claim.job_id,
                     claim.attempt, worker)
        sink = SqlJobsSink(db, [claim], run_log, settings=settings,
                           max_seconds=settings.max_job_seconds, threaded=False)
        with ProcessMeter(cuda=_cuda_device(claim.spec)) as meter:
            status, summary, error = _train(claim, sink, settings)
            try:  # what waited for the database is stored before the outcome
                sink.close()
                sink.replace_now()  # a run that stored nothing still replaces old points
            except Exception as exc:  # not the database away (that is waited for)
                log.exception("job %s: storing its last metrics failed", claim.job_id)
                status, error = jobs.FAILED, f"storing metrics failed: {exc}"
        if sink.superseded:
            log.warning("job %s: run %d was superseded (or the job deleted); its result is "
                        "dropped", claim.job_id, claim.attempt)
            return
        if summary is not None:
            summary.update(note or {})
            summary["process"] = meter.figures()
        finish_all(db, [(claim, status, summary, error)], run_log=run_log,
                   backoff=backoff_of(settings))


def _cuda_device(spec: dict[str, Any]) -> torch.device | None:
    """The CUDA device the job will run on, or None (CPU, or a spec that will fail)."""
    try:
        device = resolve_device(JobSpec.model_validate(spec).device)
    except Exception:
        return None
    return device if device.type == "cuda" else None


def _train(claim: jobs.Claim, sink: SqlJobsSink,
           settings: Settings) -> tuple[str, dict[str, Any] | None, str | None]:
    try:
        spec = JobSpec.model_validate(claim.spec)
        summary = _resume_or_start(claim, spec, sink, settings)
    except (SpecError, ValidationError) as exc:
        return jobs.FAILED, sink.last_summary(0), f"invalid spec: {exc}"
    except Exception as exc:  # a failed job is a result; the worker must go on
        log.exception("job %s failed", claim.job_id)
        detail = "".join(traceback.format_exception_only(exc)).strip()
        return jobs.FAILED, sink.last_summary(0), detail
    if (timed_out := sink.timed_out.get(0)) is not None:
        stopped_for_wall_time(summary)
    result = finite_json({**summary.as_dict(), **sink.notes[0]})
    return jobs.SUCCEEDED if timed_out is None else jobs.FAILED, result, timed_out


def _resume_or_start(claim: jobs.Claim, spec: JobSpec, sink: SqlJobsSink,
                     settings: Settings) -> TrainingSummary:
    """Train from the newest usable checkpoint of the job (an earlier attempt's), else from
    step 0; the sink replaces the points stored past that step in its first write."""
    store = CheckpointStore(settings.checkpoints)
    key = str(claim.job_id)
    with sink.db.connect() as conn:
        stored_through = metrics.last_step(conn, claim.job_id, "loss")
    plan = plan_resume(store, key, stored_through=stored_through)
    checkpointer = StoreCheckpointer(store, key, checkpoint_policy(spec, settings),
                                     keep=settings.checkpoint_keep,
                                     extra={"steps_recomputed": plan.steps_recomputed})
    sink.begin(0, after=plan.step, note={"attempts": claim.attempt,
                                         "steps_recomputed": plan.steps_recomputed})
    source = SqlDatasetSource(sink.db)
    if plan.state is not None:
        try:
            line = ("job %s: run %d resumes from the checkpoint of step %d (%d steps "
                    "recomputed)", claim.job_id, claim.attempt, plan.step, plan.steps_recomputed)
            if sink.run_log is not None:
                sink.run_log.note(log, claim.job_id, *line)
            else:
                log.info(*line)
            return run_training(spec, sink, flush_seconds=settings.flush_seconds,
                                source=source, checkpointer=checkpointer, resume=plan.state)
        except ResumeError as exc:
            log.warning("job %s: checkpoint of step %d not resumed (%s); starting from "
                        "step 0", claim.job_id, plan.step, exc)
            recomputed = 0 if stored_through is None else stored_through + 1
            checkpointer.extra["steps_recomputed"] = recomputed
            sink.begin(0, after=-1, note={"attempts": claim.attempt,
                                          "steps_recomputed": recomputed})
    return run_training(spec, sink, flush_seconds=settings.flush_seconds, source=source,
                        checkpointer=checkpointer, init_model=initial_model(store, spec))


def stopped_for_wall_time(summary: TrainingSummary) -> None:
    """The ended run's summary says why: the engine saw only its sink asking it to stop."""
    summary.outcome, summary.stop_reason = Outcome.STOPPED, "wall-time limit"


