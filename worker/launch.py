"""Start Celery workers: one per GPU (pinned with CUDA_VISIBLE_DEVICES), or one for the CPU."""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass, field

from optimlab.service.settings import Settings


@dataclass(frozen=True)
class WorkerPlan:
    """One worker process: its Celery name, the queues it consumes, what it runs on."""

    name: str
    queues: list[str]
    device: str
    env: dict[str, str] = field(default_factory=dict)


class GpuSelectionError(ValueError):
    pass


def plan_workers(gpus: str, settings: Settings, *, visible_gpus: int) -> list[WorkerPlan]:
    """``gpus`` is ``all``, ``none`` or a list such as ``0,1``; no GPU means one CPU worker.

    GPU workers also consume the cpu queue: a CPU job may run anywhere, a GPU job
    only where there is a GPU.
    """
    cpu = WorkerPlan(name=f"cpu-{os.getpid()}@%h", queues=[settings.queue("cpu")], device="cpu")
    if gpus == "none":
        return [cpu]
    if gpus == "all":
        indices = list(range(visible_gpus))
    else:
        try:
            indices = [int(part) for part in gpus.split(",") if part.strip()]
        except ValueError:
            raise GpuSelectionError(f"--gpus takes all, none or indices like 0,1; got {gpus!r}") \
                from None
        missing = [i for i in indices if not 0 <= i < visible_gpus]
        if missing:
            raise GpuSelectionError(f"GPU {missing[0]} is not visible (this machine has "
                                    f"{visible_gpus})")
    if not indices:
        return [cpu]
    return [gpu_plan(i, settings) for i in indices]


def gpu_plan(index: int, settings: Settings) -> WorkerPlan:
    """The worker of GPU ``index``; its process sees only that GPU, as cuda:0."""
    return WorkerPlan(name=f"gpu{index}-{os.getpid()}@%h",
                      queues=[settings.queue("gpu"), settings.queue("cpu")],
                      device=f"cuda:{index}", env={"CUDA_VISIBLE_DEVICES": str(index)})


def run_worker(settings: Settings, plan: WorkerPlan, *, concurrency: int) -> None:
    """Run one Celery worker in this process until it is told to stop."""
    # Imported here so that `optimlab api` never loads the worker side, and so that
    # torch is imported in the worker's main process before the pool forks (children
    # start without paying for it).
    from optimlab.worker.allocator import keep_freed_memory
    from optimlab.worker.engine.numerics import reproducible_products

    reproducible_products()  # before torch computes anything, in this process and its pool
    keep_freed_memory()
    import torch

    from optimlab.worker.celery_app import create_celery
    from optimlab.worker.engine.warmup import warm_up, warm_up_fused
    from optimlab.worker.lifecycle import WorkerMonitor
    from optimlab.worker.tasks import register_tasks

    # GNU OpenMP's thread team does not survive fork: had the warm-up below run one
    # parallel kernel with more than one thread, a pool child's first parallel kernel
    # (a large index or matrix product) would hang for ever. Each child sizes its own
    # pool (WorkerMonitor.on_child_start).
    torch.set_num_threads(1)
    warm_up()
    warm_up_fused()
    # torch leaves ~10^6 long-lived objects; keep full collections from rescanning them
    # in the middle of a job's metric writes (~0.2 s each here).
    gc.freeze()
    app = create_celery(settings)
    register_tasks(app, settings)
    threads = max(1, (os.cpu_count() or 1) // concurrency)
    WorkerMonitor(app, settings, queues=plan.queues, device=plan.device,
                  threads_per_child=threads).connect()
    app.worker_main([
        "worker", "--pool=prefork", f"--concurrency={concurrency}",
        "--queues", ",".join(plan.queues), "--hostname", plan.name,
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        f"--loglevel={settings.log_level}",
    ])
