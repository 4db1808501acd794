"""The fused training loop: many jobs, one vectorised step, each job's history its own.

Step for step it is worker/engine/loop.py's loop, for every job at once: the same
records, the same stopping rules per job. A job that ends (diverged, reached its target,
stopped, cancelled through its sink) is dropped from the stacked tensors; the others go on
untouched, because no operation mixes jobs.

What a step records stays in tensors, one row for all jobs (the losses; the norms and
small models' parameters), until a write: then each job's rows become its columns in one
conversion, and its summary's loss statistics are computed over them in bulk
(``Recorder.losses``). Per step, Python looks at single jobs only where a rule may end
one: a non-finite sum of the losses, a loss outside a job's ``StopRules.loss_bounds``, the
jobs whose rules watch every step, and evaluations.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

from optimlab.worker.engine import metric_names as names
from optimlab.worker.engine.checkpoint import Checkpointer, RunState
from optimlab.worker.engine.data import DatasetSource
from optimlab.worker.engine.devices import resolve_device
from optimlab.worker.engine.fused.norms import HeldSteps
from optimlab.worker.engine.fused.optimizers import FusedOptimizer, fused_optimizer
from optimlab.worker.engine.fused.resume import (
    FORMAT,
    Checkpoints,
    Saved,
    restore,
    rng_state,
    set_rng_state,
)
from optimlab.worker.engine.fused.rows import JobRows, job_rows
from optimlab.worker.engine.fused.schedule import ScheduleTrack, schedule_tracks
from optimlab.worker.engine.fused.stacked import Mode, StackedProblem, build_stacked
from optimlab.worker.engine.loop import plan_length
from optimlab.worker.engine.recorder import Recorder
from optimlab.worker.engine.sink import (
    ColumnSteps,
    ColumnValues,
    JobUpdate,
    MetricSink,
    SeriesColumns,
    TrainingSummary,
    as_floats,
)
from optimlab.worker.engine.stopping import Ending, StopRules, ending_from_state, ending_state
from optimlab.worker.outcomes import Outcome
from optimlab.worker.spec import JobSpec


class _Buffer:
    """A Recorder's sink that keeps its batch (a fused job's evaluations, the only points
    it records through its Recorder) for the run's sink to write with the others."""

    def __init__(self) -> None:
        self.columns: SeriesColumns = {}

    def write(self, updates: Sequence[JobUpdate]) -> list[bool]:
        (_, self.columns, _), = updates
        return [True]


@dataclass
class FusedJob:
    index: int
    origin: int  # its position in the specs of the run first checkpointed (resume.py)
    spec: JobSpec
    track: ScheduleTrack
    recorder: Recorder
    buffer: _Buffer
    stops: StopRules
    width: int  # the points it records per step (its evaluations aside)
    columns: SeriesColumns = field(default_factory=dict)  # collected, not written yet
    ending: Ending | None = None
    ended_at_loss: bool = False  # then its last step has no norms: a job alone stops first

    @property
    def summary(self) -> TrainingSummary:
        return self.recorder.summary


@dataclass
class _Rows:
    """The steps recorded since the last collection, for the jobs active now (in order)."""

    first: int  # the step of the first row
    losses: list[torch.Tensor] = field(default_factory=list)  # [jobs] per step
    # [jobs, len(row_names), steps] per stretch of steps that went past the loss (not a
    # step all ended at)
    tables: list[torch.Tensor] = field(default_factory=list)


def run_fused(specs: list[JobSpec], sink: MetricSink, *, flush_seconds: float = 0.5,
              clock: Callable[[], float] = time.perf_counter,
              source: DatasetSource | None = None, mode: Mode | None = None,
              built: StackedProblem | None = None, checkpointer: Checkpointer | None = None,
              resume: RunState | None = None,
              origins: Sequence[int] | None = None) -> list[TrainingSummary]:
    """Train every spec (they must share all but optimizer options, schedule and seed; see
    plan.fusion_key) as one run; return each job's summary, in the specs' order. ``mode``:
    how the model runs fused (stacked.modes; default the fastest). ``built``: these specs'
    ``build_stacked``, when the caller has it (the run starts from a fresh copy).

    ``checkpointer``: hand the run's state over (resume.py) right after a flush that
    stored every job's points up to the step, when its policy is due. ``resume``: go on
    from such a state (in ``mode``, else the mode it was taken in); ``origins[k]`` is spec
    k's position in the checkpointed run's specs (default: the same position). A job of the
    state that is not among the specs is left out; one that had ended keeps the summary it
    ended with."""
    origins = list(range(len(specs))) if origins is None else list(origins)
    device = resolve_device(specs[0].device)
    first = specs[0]
    if resume is not None and mode is None:
        mode = resume["mode"]  # the mode its numbers came from (any exact one would do)
    if built is None:
        problem = build_stacked(specs, device=device, source=source, mode=mode)
    elif built.params[0].shape[0] != len(specs):
        raise ValueError(f"a stacked problem of {built.params[0].shape[0]} jobs for "
                         f"{len(specs)} specs")
    else:
        problem = built.fresh(mode or built.mode)
    steps, per_epoch = plan_length(first, problem.train.rows)
    saved = None if resume is None else restore(resume, origins, steps=steps)
    optimizer = fused_optimizer(first.optimizer.name,
                                [spec.optimizer.kwargs for spec in specs], problem.params)
    tracks = schedule_tracks(specs, steps=steps)
    row_names = [*names.NORMS, *_recorded_names(problem)]
    jobs = [_job(i, origin, spec, track, problem, steps, str(device), flush_seconds, clock,
                 len(row_names))
            for i, (origin, spec, track) in enumerate(zip(origins, specs, tracks, strict=True))]
    rows = job_rows(problem.train.rows, first.batch_size, [s.seed for s in specs],
                    drop_last=first.drop_last, device=device)
    run = _Run(problem, optimizer, jobs, sink, steps, per_epoch, row_names,
               ordered=saved is None)
    start = 0
    if saved is not None:
        run.restore(saved, rows)
        start = saved.step + 1
    checkpoints = None if checkpointer is None else Checkpoints(checkpointer, clock,
                                                                after=start - 1)
    with collector_paused():
        for step in range(start, steps):
            if not run.active:
                break
            batch = next(rows)
            run.step(step, None if batch is None else batch[run.alive], last=step == steps - 1)
            flushed = run.flush_if_due()
            run.drop_ended(step)
            if flushed and run.active and checkpoints is not None and checkpoints.due(step):
                checkpoints.save(step, run.state(step, rows))
        run.finish()
    return [job.summary for job in jobs]


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: the loop's objects (tensors, lists of floats,
    tuples) form no cycles, and the full passes that its allocations set off walked the
    whole heap in the middle of the run (0.15-0.4 s of a 1 s run, seen here). What is
    left for the collector is collected after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _job(index: int, origin: int, spec: JobSpec, track: ScheduleTrack, problem: StackedProblem,
         steps: int, device: str, flush_seconds: float, clock: Callable[[], float],
         norms: int) -> FusedJob:
    summary = TrainingSummary(device=device, parameter_count=problem.parameter_count,
                              loss=problem.plan.name, steps=steps)
    buffer = _Buffer()
    recorder = Recorder(buffer, summary, flush_seconds=flush_seconds, clock=clock,
                        thresholds=spec.summary.thresholds)
    width = 2 + (track.momentum_key is not None) + norms  # lr, loss, momentum, norms
    return FusedJob(index, origin, spec, track, recorder, buffer, StopRules(spec), width)


class _Run:
    def __init__(self, problem: StackedProblem, optimizer: FusedOptimizer, jobs: list[FusedJob],
                 sink: MetricSink, steps: int, per_epoch: int, row_names: list[str], *,
                 ordered: bool = True) -> None:
        self.problem = problem
        self.optimizer = optimizer
        self.active = list(jobs)
        self.ended: list[FusedJob] = []
        self.sink = sink
        self.steps = steps
        self.per_epoch = per_epoch
        self.device = problem.params[0].device
        self.alive = torch.arange(len(jobs), device=self.device)
        self.row_names = row_names
        self.recorded = len(row_names) > 3
        self.rows = _Rows(first=0)
        self.last_step: int | None = None  # the last step run
        self.unflushed = 0  # steps recorded since the last flush (by every live job)
        self.ending = False  # whether some active job has an ending, to drop
        self.held = HeldSteps(problem.params, record_params=self.recorded)
        if ordered:  # a resumed run takes the order of the run it resumes
            self._order_by_update_group()
        self._active_changed()

    def state(self, step: int, rows: JobRows) -> RunState:
        """The run's state after ``step``, taken right after a flush (resume.py)."""
        if self.rows.losses or len(self.held):
            raise RuntimeError("a fused run's state is taken right after a flush")
        problem = self.problem
        return {
            "format": FORMAT, "step": step, "stored_step": step, "steps": self.steps,
            "mode": problem.mode,
            "jobs": [{"origin": job.origin, "recorder": job.recorder.state_dict(),
                      "stops": job.stops.state_dict(), "ended_at_loss": job.ended_at_loss,
                      "ending": ending_state(job.ending)}
                     for job in [*self.active, *self.ended]],
            "active": [job.origin for job in self.active],
            "params": [p.detach().clone() for p in problem.params],
            "optimizer": self.optimizer.state_dict(),
            "rows": rows.state_dict([int(k) for k in self.alive.tolist()]),
            "rng": rng_state(),
        }

    def restore(self, saved: Saved, rows: JobRows) -> None:
        """Go on from a checkpoint: its jobs' bookkeeping, then its stacks, kept to the
        jobs of this run that were still active in it (in its order)."""
        for job, entry in zip(self.active, saved.entries, strict=True):
            job.recorder.load_state_dict(entry["recorder"])
            job.stops.load_state_dict(entry["stops"])
            job.ended_at_loss = bool(entry["ended_at_loss"])
            job.ending = ending_from_state(entry["ending"])
        going = set(saved.active)
        self.ended = [job for k, job in enumerate(self.active) if k not in going]
        self._keep(saved.active)  # the loop's own way of dropping jobs
        state = saved.state
        if self.active:
            picked = torch.tensor(saved.rows, dtype=torch.long)
            with torch.no_grad():
                for mine, theirs in zip(self.problem.params, state["params"], strict=True):
                    mine.copy_(theirs.index_select(0, picked).to(mine.device))
            self.optimizer.load_state_dict(state["optimizer"], saved.rows)
            self.held = HeldSteps(self.problem.params, record_params=self.recorded)
            rows.load_state_dict(state["rows"], dict(zip(saved.active, saved.rows,
                                                         strict=True)))
            self._active_changed()
        set_rng_state(state["rng"])
        self.last_step = saved.step
        self.rows = _Rows(first=saved.step + 1)

    def _order_by_update_group(self) -> None:
        """Put the jobs that the optimizer updates with the same branches next to each
        other (momentum on or off, say), so that it updates each group through a view."""
        order = self.optimizer.group_order()
        if order == sorted(order):
            return
        self._keep(order)

    def _active_changed(self) -> None:
        """What the per-step checks need of the active jobs, in their order."""
        self.tracks = [job.track for job in self.active]
        self.step_watchers = [k for k, job in enumerate(self.active)
                              if job.stops.watches_steps]
        self.bounds: tuple[torch.Tensor, torch.Tensor] | None = None
        if any(job.stops.watches_loss for job in self.active):
            low, high = zip(*(job.stops.loss_bounds() for job in self.active), strict=True)
            # float64 holds every bound exactly, and compares with each float32 loss as
            # Python compares their floats
            self.bounds = (torch.tensor(low, dtype=torch.float64, device=self.device),
                           torch.tensor(high, dtype=torch.float64, device=self.device))

    def step(self, i: int, rows: torch.Tensor | None, *, last: bool) -> None:
        self.last_step = i
        params = self.problem.params
        losses = self.problem.losses(rows)
        total = losses.sum()
        if not self._record_loss(i, losses.detach(), total):
            return  # every job ended at its loss
        total.backward()
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        track = self.tracks
        key = track[0].momentum_key
        cycled = None if key is None else [t.momentum[i] for t in track]  # type: ignore[index]
        self.optimizer.step(grads, [t.lr[i] for t in track],
                            momentum=cycled if key == "momentum" else None,
                            beta1=cycled if key == "beta1" else None)
        for p in params:
            p.grad = None
        self.held.hold(grads, self.problem.params)
        if self.held.full:
            self._settle()
        self._evaluate(i, last=last)

    def _record_loss(self, i: int, losses: torch.Tensor, total: torch.Tensor) -> bool:
        """Keep the step's losses; make the checks a job alone makes on its loss. False
        when every job ended at it."""
        self.rows.losses.append(losses)
        self.unflushed += 1
        if not self._loss_may_end_a_job(i, losses, total):
            return True
        going = len(self.active)
        for job, value in zip(self.active, losses.tolist(), strict=True):
            if job.stops.watches_loss or not math.isfinite(value):
                job.ending = job.stops.after_loss(i, value)
                if job.ending is not None:
                    job.ended_at_loss = self.ending = True
                    going -= 1
        if i == 0:
            self._active_changed()  # the bounds that follow from the initial losses
        return going > 0

    def _loss_may_end_a_job(self, i: int, losses: torch.Tensor, total: torch.Tensor) -> bool:
        """Whether some job's ``after_loss`` may not answer None this step (step 0 sets
        their initial losses, so every job that watches its loss looks at it)."""
        if i == 0 or not math.isfinite(total.item()):  # a NaN or infinite loss, or overflow
            return True
        if self.bounds is None:
            return False
        low, high = self.bounds
        wide = losses.double()
        return bool(((wide < low) | (wide > high)).any())

    def _settle(self) -> None:
        """Turn the held steps into their columns of norms and parameters."""
        table = self.held.settle()
        if table is not None:
            self.rows.tables.append(table)

    def _evaluate(self, i: int, *, last: bool) -> None:
        every = self.active[0].spec.eval_every
        due = every is not None and ((i + 1) % every == 0 or last)
        if not due and not self.step_watchers:
            return
        results = self._evaluations() if due else []
        update_norms: list[float] = []
        if self.step_watchers:  # their rules read this step's update norm
            self._settle()
            update_norms = self.rows.tables[-1][:, 1, -1].tolist()
        for k in range(len(self.active)) if due else self.step_watchers:
            job = self.active[k]
            if job.ending is not None:
                continue  # it ended at its loss: a job alone evaluates nothing this step
            values = {name: column[k] for name, column in results}
            if due:
                job.recorder.evaluation(i, values)
            if job.stops.watches_steps:
                job.ending = job.stops.after_step(values.get(names.VAL_LOSS), update_norms[k],
                                                  job.recorder.elapsed())
                self.ending = self.ending or job.ending is not None

    def _evaluations(self) -> list[tuple[str, list[float]]]:
        """Each job's evaluation, by name, in the order a job alone records them."""
        results = []
        for prefix, part in (("train", self.problem.train), ("val", self.problem.val)):
            if part is None:
                continue
            loss, hits = self.problem.evaluate(part)
            results.append((names.evaluation_loss(prefix), loss.tolist()))
            if hits is not None:
                results.append((names.accuracy(prefix), [h / part.rows for h in hits.tolist()]))
        return results

    def flush_if_due(self) -> bool:
        """Write the live jobs' points when due; whether it wrote."""
        first = next((job for job in self.active if job.ending is None), None)
        if first is None or not first.recorder.due(self.unflushed * first.width):
            return False
        live = [job for job in self.active if job.ending is None]
        self.unflushed = 0
        for job, keep_going in zip(live, self._write(live), strict=True):
            if not keep_going:
                job.ending = (Outcome.CANCELLED, None)
                self.ending = True
        return True

    def _write(self, jobs: list[FusedJob]) -> list[bool]:
        self._collect()
        return self.sink.write([self._update(job) for job in jobs])

    def _collect(self) -> None:
        """Turn the rows recorded so far into each active job's columns (before a write,
        or before the set of jobs, and so the rows' layout, changes)."""
        self._settle()
        rows = self.rows
        self.rows = _Rows(first=rows.first + len(rows.losses))
        if not rows.losses:
            return
        first, count = rows.first, len(rows.losses)
        # one conversion for all jobs and steps: [jobs][steps] as floats (the summaries
        # read them), [jobs, names, steps] as an array the sink packs as it is
        losses = torch.stack(rows.losses, dim=1).tolist()
        table = torch.cat(rows.tables, dim=2).numpy() if rows.tables else None
        for k, job in enumerate(self.active):
            job.recorder.losses(first, losses[k])
            columns, track, end = job.columns, job.track, first + count
            _extend(columns, names.LOSS, first, losses[k])
            _extend(columns, names.LR, first, track.lr[first:end])
            if track.momentum_key is not None and track.momentum is not None:
                _extend(columns, track.momentum_key, first, track.momentum[first:end])
            if table is None:
                continue
            # a job that ended at its loss has no norms for that last step
            normed = count - 1 if job.ended_at_loss else table.shape[2]
            for name, values in zip(self.row_names, table[k], strict=True):
                _extend(columns, name, first, values[:normed])

    def _update(self, job: FusedJob) -> JobUpdate:
        """The job's points since its last write, and its summary brought up to date."""
        if self.last_step is not None:
            job.summary.epochs_done = (self.last_step + 1) / self.per_epoch
        job.recorder.flush()  # wall time and speed; its buffer gets the evaluations
        columns, job.columns = job.columns, {}
        for name, (steps, values) in job.buffer.columns.items():
            _add(columns, name, steps, values)
        return job.index, columns, job.summary

    def drop_ended(self, step: int) -> None:
        if not self.ending:
            return
        self.ending = False
        ending = [job for job in self.active if job.ending is not None]
        for job in ending:
            assert job.ending is not None
            job.summary.conclude(*job.ending, step)
        self._write(ending)
        keep = [k for k, job in enumerate(self.active) if job.ending is None]
        self.ended += ending
        self._keep(keep)
        if keep:
            self._active_changed()

    def _keep(self, keep: list[int]) -> None:
        """Go on with the active jobs at positions ``keep``, in that order."""
        self.active = [self.active[k] for k in keep]
        if not keep:
            return
        rows = torch.tensor(keep, device=self.alive.device)
        self.alive = self.alive[rows]
        self.problem.keep(rows)
        self.optimizer.keep(rows, self.problem.params)
        self.held.keep(rows)

    def finish(self) -> None:
        for job in self.active:
            job.summary.conclude(Outcome.COMPLETED, None, self.steps - 1)
        if self.active:
            self._write(self.active)


def _extend(columns: SeriesColumns, name: str, first: int, values: ColumnValues) -> None:
    """Add ``values`` (of steps ``first``, ``first + 1``, ...) to series ``name``."""
    if len(values):
        _add(columns, name, range(first, first + len(values)), values)


def _add(columns: SeriesColumns, name: str, steps: ColumnSteps, values: ColumnValues) -> None:
    column = columns.get(name)
    if column is None:
        columns[name] = (steps, values)
    else:  # a second stretch before a write (the jobs changed in between): join as lists
        columns[name] = ([*column[0], *steps], [*as_floats(column[1]), *as_floats(values)])


def _recorded_names(problem: StackedProblem) -> list[str]:
    if problem.parameter_count > names.MAX_RECORDED_PARAMETERS:
        return []
    return [series for name, tensor in zip(problem.user_names, problem.params, strict=True)
            for series in names.parameter_series(name, tensor[0].numel())]
