"""One training step, with everything recorded around it, and the reasons to stop."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.nn.utils import clip_grad_norm_
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ReduceLROnPlateau

from optimlab.worker.engine import metric_names as names
from optimlab.worker.engine.problem import Batch, Problem
from optimlab.worker.engine.recorder import Recorder
from optimlab.worker.engine.registry import (
    Scheduler,
    as_argument,
    build_optimizer,
    build_scheduler,
    check_group_options,
    needs_closure,
)
from optimlab.worker.engine.stopping import Ending, StopRules
from optimlab.worker.spec import JobSpec, ParameterGroup
from optimlab.worker.spec_errors import SpecError

# Parameters are recorded every step only for models this small (the seed's table).


@dataclass
class Training:
    spec: JobSpec
    problem: Problem
    optimizer: Optimizer
    scheduler: Scheduler | None
    params: list[torch.Tensor]
    recorded: list[tuple[torch.Tensor, list[str]]]
    momentum_key: str | None
    monitor: str
    closure: bool
    stops: StopRules
    _grad_norm: list[torch.Tensor] = field(default_factory=list)

    def step(self, i: int, batch: Batch, rec: Recorder, *, last: bool) -> Ending | None:
        self._record_schedule(i, rec)
        before = [p.detach().clone() for p in self.params]
        if self.closure:
            value = self._closure_update(batch)
            rec.loss(i, value)
            ending = self.stops.after_loss(i, value)
        else:
            self.optimizer.zero_grad()
            loss = self.problem.objective(batch)
            value = loss.item()
            rec.loss(i, value)
            ending = self.stops.after_loss(i, value)
            if ending is not None:
                return ending
            loss.backward()
            self._grad_norm = [self._clip_or_measure()]
            self.optimizer.step()
        update_norm = self._record_norms(i, rec, before)
        for tensor, series in self.recorded:
            _record_parameter(tensor, series, i, rec)
        if ending is not None:
            return ending
        val_loss = self._evaluate(i, rec, last=last)
        self._schedule(value, val_loss)
        return self.stops.after_step(val_loss, update_norm, rec.elapsed())

    def step_schedule_only(self) -> None:
        """Advance the schedule alone (validation looks ahead with it)."""
        self._schedule(1.0, 1.0)

    def _record_schedule(self, i: int, rec: Recorder) -> None:
        group = self.optimizer.param_groups[0]
        rec.add(i, names.LR, float(group["lr"]))
        if self.momentum_key == names.MOMENTUM:
            rec.add(i, names.MOMENTUM, float(group["momentum"]))
        elif self.momentum_key == names.BETA1:
            rec.add(i, names.BETA1, float(group["betas"][0]))

    def _closure_update(self, batch: Batch) -> float:
        self._grad_norm = []

        def closure() -> torch.Tensor:
            self.optimizer.zero_grad()
            loss = self.problem.objective(batch)
            loss.backward()
            norm = self._clip_or_measure()
            if not self._grad_norm:  # the first evaluation: the gradient before the update
                self._grad_norm.append(norm)
            return loss

        # The optimizer returns the loss its closure computed first: the one before the update.
        return float(self.optimizer.step(closure).detach())  # type: ignore[arg-type, attr-defined]

    def _clip_or_measure(self) -> torch.Tensor:
        if self.spec.clip_grad_norm is not None:
            return clip_grad_norm_(self.params, self.spec.clip_grad_norm)
        grads = [p.grad for p in self.params if p.grad is not None]
        return total_norm(grads) if grads else torch.zeros((), device=self.params[0].device)

    def _record_norms(self, i: int, rec: Recorder, before: list[torch.Tensor]) -> float:
        current = [p.detach() for p in self.params]
        update = total_norm(torch._foreach_sub(current, before))
        size = total_norm(current)
        # One host-device synchronisation for the three numbers.
        grad_norm, update_norm, param_norm = torch.stack(
            [self._grad_norm[0].to(update.device), update, size]).tolist()
        rec.add(i, names.GRAD_NORM, grad_norm)
        rec.add(i, names.UPDATE_NORM, update_norm)
        rec.add(i, names.PARAM_NORM, param_norm)
        return float(update_norm)

    def _evaluate(self, i: int, rec: Recorder, *, last: bool) -> float | None:
        every = self.spec.eval_every
        if every is None or not ((i + 1) % every == 0 or last):
            return None
        values: dict[str, float] = {}
        for prefix, part in (("train", self.problem.train), ("val", self.problem.val)):
            if part is None:
                continue
            loss, accuracy = self.problem.evaluate(part)
            values[names.evaluation_loss(prefix)] = loss
            if accuracy is not None:
                values[names.accuracy(prefix)] = accuracy
        rec.evaluation(i, values)
        return values.get(names.VAL_LOSS)

    def _schedule(self, loss: float, val_loss: float | None) -> None:
        scheduler = self.scheduler
        if scheduler is None:
            return
        if not isinstance(scheduler, ReduceLROnPlateau):
            scheduler.step()
        elif self.monitor == "loss":
            scheduler.step(loss)
        elif val_loss is not None:
            scheduler.step(val_loss)


def total_norm(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``torch.nn.utils.get_total_norm`` for tensors of one device and dtype (a model's are),
    without its grouping of the tensors on every call: the same kernels, the same bits, at a
    fraction of the cost of a small model's step."""
    norms: list[torch.Tensor] = list(torch._foreach_norm(list(tensors)))
    total: torch.Tensor = torch.linalg.vector_norm(torch.stack(norms))
    return total


def build_training(spec: JobSpec, problem: Problem, *, steps: int) -> Training:
    named = problem.parameters
    for i, group in enumerate(spec.parameter_groups):
        check_group_options(spec.optimizer, group.options, loc=("parameter_groups", i, "options"))
    optimizer = build_optimizer(spec.optimizer, _groups(named, spec.parameter_groups))
    scheduler = (build_scheduler(spec.schedule, optimizer, steps=steps)
                 if spec.schedule is not None else None)
    monitor = (spec.schedule.monitor if spec.schedule is not None else None) or "loss"
    _check_evaluation_needs(spec, problem, scheduler, monitor)
    return Training(spec=spec, problem=problem, optimizer=optimizer, scheduler=scheduler,
                    params=[p for _, p in named], recorded=_recorded(problem),
                    momentum_key=_momentum_key(optimizer, scheduler), monitor=monitor,
                    closure=needs_closure(type(optimizer)), stops=StopRules(spec))


def _groups(named: list[tuple[str, torch.nn.Parameter]],
            groups: list[ParameterGroup]) -> list[torch.Tensor] | list[dict[str, Any]]:
    """The optimizer's parameter list, or its groups: the unmatched parameters first (the
    default group, whose lr is the job's ``lr``), then each group in the spec's order."""
    if not groups:
        tensors: list[torch.Tensor] = [p for _, p in named]
        return tensors
    taken: set[int] = set()
    chosen: list[dict[str, Any]] = []
    for i, group in enumerate(groups):
        params = [p for name, p in named if id(p) not in taken and _matches(name, group.match)]
        if not params:
            listed = ", ".join(name for name, _ in named)
            raise SpecError(("parameter_groups", i, "match"),
                            f"{group.match!r} matches no parameter left; the model has: {listed}")
        taken.update(id(p) for p in params)
        chosen.append({**{k: as_argument(v) for k, v in group.options.items()},
                       "params": params})
    rest = [p for _, p in named if id(p) not in taken]
    return [{"params": rest}, *chosen] if rest else chosen


def _matches(name: str, pattern: str) -> bool:
    if pattern in ("bias", "weight"):
        return name.rsplit(".", 1)[-1] == pattern
    return fnmatch.fnmatchcase(name, pattern)


def _recorded(problem: Problem) -> list[tuple[torch.Tensor, list[str]]]:
    """Each parameter with the names of its series; none for models too big to record."""
    if problem.parameter_count > names.MAX_RECORDED_PARAMETERS:
        return []
    return [(tensor, names.parameter_series(name, tensor.numel()))
            for name, tensor in problem.parameters]


def _record_parameter(tensor: torch.Tensor, series: list[str], step: int, rec: Recorder) -> None:
    if len(series) == 1:
        rec.add(step, series[0], tensor.item())
    else:
        rec.points.extend(zip([step] * len(series), series, tensor.detach().reshape(-1).tolist(),
                              strict=True))


def _momentum_key(optimizer: Optimizer, scheduler: Scheduler | None) -> str | None:
    """Which momentum to record: the one a cycling schedule (CyclicLR, OneCycleLR) changes."""
    if scheduler is None or not cycles_momentum(scheduler):
        return None
    group = optimizer.param_groups[0]
    return names.BETA1 if "betas" in group else names.MOMENTUM if "momentum" in group else None


def cycles_momentum(scheduler: Any) -> bool:
    if getattr(scheduler, "cycle_momentum", False):
        return True
    return any(cycles_momentum(s) for s in getattr(scheduler, "_schedulers", []))


def _check_evaluation_needs(spec: JobSpec, problem: Problem, scheduler: Scheduler | None,
                            monitor: str) -> None:
    wants_val = monitor == "val_loss" or (spec.stop is not None and spec.stop.patience)
    if not wants_val:
        return
    field = ("schedule", "monitor") if monitor == "val_loss" else ("stop", "patience")
    if spec.eval_every is None:
        raise SpecError(field, "watching val_loss needs eval_every")
    if problem.val is None:
        raise SpecError(field, "watching val_loss needs a validation split (data.val_fraction)")
    if monitor == "val_loss" and not isinstance(scheduler, ReduceLROnPlateau):
        raise SpecError(field, "only ReduceLROnPlateau watches a metric")
