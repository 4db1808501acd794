"""Which jobs of a sweep go to a worker together as one fused task, and which alone (why)."""

from __future__ import annotations

from dataclasses import dataclass, field

from optimlab.worker.engine.fused.plan import fusion_key
from optimlab.worker.spec import JobSpec

ALONE_IN_GROUP = "no other point of the sweep shares its model, data, batching and length"


@dataclass
class FusionPlan:
    tasks: list[list[int]] = field(default_factory=list)  # indices of the jobs of each task
    alone: list[tuple[int, str]] = field(default_factory=list)  # (index, why not fused)


def plan_fusion(specs: list[JobSpec], *, enabled: bool, max_jobs: int) -> FusionPlan:
    """Group the jobs that can fuse, in the sweep's order, in tasks of at most ``max_jobs``."""
    plan = FusionPlan()
    if not enabled:
        plan.alone = [(i, "the sweep asked not to fuse (fuse: false)") for i in range(len(specs))]
        return plan
    groups: dict[bytes, list[int]] = {}
    for i, spec in enumerate(specs):
        key, reason = fusion_key(spec)
        if key is None:
            plan.alone.append((i, reason or "not fusable"))
        else:
            groups.setdefault(key, []).append(i)
    for members in groups.values():
        if len(members) == 1:
            plan.alone.append((members[0], ALONE_IN_GROUP))
            continue
        plan.tasks += _even_chunks(members, max_jobs)
    plan.alone.sort()
    return plan


def _even_chunks(members: list[int], most: int) -> list[list[int]]:
    """As few chunks of at most ``most`` as possible, sizes within one: 130 by 128 -> 65, 65."""
    count = -(-len(members) // most)
    size, extra = divmod(len(members), count)
    chunks, start = [], 0
    for k in range(count):
        end = start + size + (1 if k < extra else 0)
        chunks.append(members[start:end])
        start = end
    return chunks
