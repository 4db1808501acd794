"""Per-job learning rates (and cycled momenta) of a fused run, from torch's own schedulers.

Every scheduler but ReduceLROnPlateau is a function of the step count and the optimizer's
hyperparameters alone, so it can run ahead on a stand-in optimizer over one zero parameter:
the values it sets are, bit for bit, those the job's real optimizer would see. Jobs whose
optimizer options and schedule are equal share one such run.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import orjson
import torch

from optimlab.worker.engine.registry import Scheduler, build_optimizer, build_scheduler
from optimlab.worker.engine.training import cycles_momentum
from optimlab.worker.spec import JobSpec
from optimlab.worker.spec_errors import SpecError


@dataclass(frozen=True)
class ScheduleTrack:
    """What the schedule sets before each step: lr, and momentum or beta1 where it cycles."""

    lr: list[float]
    momentum_key: str | None  # "momentum", "beta1" or None
    momentum: list[float] | None


def schedule_tracks(specs: list[JobSpec], *, steps: int) -> list[ScheduleTrack]:
    """One track per job (shared between jobs with the same optimizer and schedule)."""
    cache: dict[bytes, ScheduleTrack] = {}
    tracks = []
    for spec in specs:
        key = orjson.dumps([spec.optimizer.model_dump(mode="json"),
                            None if spec.schedule is None
                            else spec.schedule.model_dump(mode="json")],
                           option=orjson.OPT_SORT_KEYS)
        if key not in cache:
            cache[key] = _track(spec, steps)
        tracks.append(cache[key])
    return tracks


def cycled_key(spec: JobSpec) -> str | None:
    """What the job's schedule cycles besides the lr: "momentum", "beta1" or None. Jobs
    that differ in it cannot share a fused step (plan.fusion_key keeps them apart)."""
    if spec.schedule is None:
        return None
    optimizer = build_optimizer(spec.optimizer, [torch.zeros(1, requires_grad=True)])
    try:
        scheduler = build_scheduler(spec.schedule, optimizer, steps=max(1, spec.steps or 1))
    except SpecError:
        return None  # validation refuses the schedule; nothing to fuse it with
    return _cycled(scheduler, optimizer.param_groups[0])


def _cycled(scheduler: Scheduler, group: dict[str, Any]) -> str | None:
    if not cycles_momentum(scheduler):
        return None
    return "beta1" if "betas" in group else "momentum" if "momentum" in group else None


def _track(spec: JobSpec, steps: int) -> ScheduleTrack:
    stand_in = torch.zeros(1, requires_grad=True)
    optimizer = build_optimizer(spec.optimizer, [stand_in])
    group = optimizer.param_groups[0]
    if spec.schedule is None:
        return ScheduleTrack(lr=[float(group["lr"])] * steps, momentum_key=None, momentum=None)
    scheduler = build_scheduler(spec.schedule, optimizer, steps=steps)
    key = _cycled(scheduler, group)
    lrs: list[float] = []
    momenta: list[float] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. a schedule that runs past its total_steps
        for _ in range(steps):
            lrs.append(float(group["lr"]))
            if key == "momentum":
                momenta.append(float(group["momentum"]))
            elif key == "beta1":
                momenta.append(float(group["betas"][0]))
            optimizer.step()  # no gradient: changes nothing, keeps the scheduler's order check
            scheduler.step()
    return ScheduleTrack(lr=lrs, momentum_key=key, momentum=momenta if key else None)
