"""A sweep request: a base JobSpec, axes over its dotted field paths, seeds; and its points.

Axes are lists of values (a grid, or a choice in random mode) or distributions
(``{"log_uniform": [lo, hi]}``, ``{"uniform": [lo, hi]}``, ``{"choice": [...]}``) drawn
in random mode from a generator seeded by ``sample_seed``, so a sweep is reproducible.
"""

from __future__ import annotations

import copy
import itertools
import math
import random
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationInfo,
    field_validator,
    model_validator,
)

from optimlab.worker.spec import Tag

AxisPath = Annotated[str, Field(max_length=200,
                                pattern=r"^[A-Za-z_]\w*(\.([A-Za-z_]\w*|\d+))*$")]
MAX_AXES = 16
MAX_VALUES = 1000


class _Distribution(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LogUniform(_Distribution):
    log_uniform: tuple[float, float]

    @model_validator(mode="after")
    def _check(self) -> LogUniform:
        lo, hi = self.log_uniform
        if not (0 < lo < hi and math.isfinite(hi)):
            raise ValueError("log_uniform needs 0 < low < high")
        return self

    def draw(self, rng: random.Random) -> float:
        lo, hi = self.log_uniform
        return math.exp(rng.uniform(math.log(lo), math.log(hi)))


class Uniform(_Distribution):
    uniform: tuple[float, float]

    @model_validator(mode="after")
    def _check(self) -> Uniform:
        lo, hi = self.uniform
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError("uniform needs finite low < high")
        return self

    def draw(self, rng: random.Random) -> float:
        return rng.uniform(*self.uniform)


class Choice(_Distribution):
    choice: list[JsonValue] = Field(min_length=1, max_length=MAX_VALUES)

    def draw(self, rng: random.Random) -> JsonValue:
        return rng.choice(self.choice)


Axis = Annotated[list[JsonValue], Field(min_length=1, max_length=MAX_VALUES)] | LogUniform \
    | Uniform | Choice


class SweepSpec(BaseModel):
    """What POST /v1/sweeps takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="", max_length=120)
    tags: list[Tag] = Field(default_factory=list, max_length=10)
    mode: Literal["grid", "random"] = "grid"
    samples: int | None = Field(default=None, ge=1, validate_default=True,
                                description="Points drawn in random mode.")
    sample_seed: int = Field(default=0, ge=0, lt=2**63)
    base: dict[str, Any] = Field(description="A JobSpec; the axes set or override its fields.")
    axes: dict[AxisPath, Axis] = Field(
        default_factory=dict, max_length=MAX_AXES,
        description='Dotted field paths, e.g. {"optimizer.lr": [0.001, 0.01], '
                    '"batch_size": [1, null]}, or distributions in random mode.')
    seeds: list[Annotated[int, Field(ge=0, lt=2**63)]] | Annotated[int, Field(ge=1)] | None = \
        Field(default=None, description="Replicate every point: a list of seeds, or n for "
                                        "seeds 0..n-1. Default: the base spec's seed only.")
    fuse: bool = Field(default=True, description="Run points that differ only in optimizer "
                                                 "options, schedule and seed as one fused "
                                                 "run (each job's numbers unchanged).")

    # Field validators (not one model validator) so that each error names its field;
    # each sees the fields declared before it in info.data.
    @field_validator("samples")
    @classmethod
    def _samples_fit_mode(cls, samples: int | None, info: ValidationInfo) -> int | None:
        mode = info.data.get("mode")
        if mode == "random" and samples is None:
            raise ValueError("mode 'random' needs samples")
        if mode == "grid" and samples is not None:
            raise ValueError("samples is for mode 'random'; a grid takes every combination")
        return samples

    @field_validator("axes")
    @classmethod
    def _axes_fit_mode(cls, axes: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if info.data.get("mode") == "grid":
            drawn = [p for p, a in axes.items() if isinstance(a, LogUniform | Uniform)]
            if drawn:
                raise ValueError(f"axis {drawn[0]!r} is a distribution: use mode 'random'")
        return axes

    @field_validator("seeds")
    @classmethod
    def _one_seed_axis(cls, seeds: Any, info: ValidationInfo) -> Any:
        if seeds is not None and "seed" in (info.data.get("axes") or {}):
            raise ValueError("give seeds either as the 'seed' axis or as seeds, not both")
        return seeds

    def seed_list(self) -> list[int] | None:
        if self.seeds is None:
            return None
        if isinstance(self.seeds, int):
            return list(range(self.seeds))
        return list(dict.fromkeys(self.seeds))

    def size(self) -> int:
        """Jobs this sweep generates, computed without generating them."""
        if self.mode == "random":
            points = self.samples or 0
        else:
            points = math.prod(len(_values(a)) for a in self.axes.values())
        seeds = self.seed_list()
        return points * (1 if seeds is None else len(seeds))


@dataclass(frozen=True)
class SweepPoint:
    index: int
    values: dict[str, Any]  # the axes' values
    spec: dict[str, Any]  # the base with those values (and the seed) set

    def describe(self) -> str:
        shown = {**self.values, "seed": self.spec.get("seed", 0)}
        return ", ".join(f"{k}={_short(v)}" for k, v in shown.items())


class PathError(ValueError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


def expand(sweep: SweepSpec) -> list[SweepPoint]:
    """Every job of the sweep, in grid (or draw) order with seeds innermost."""
    seeds = sweep.seed_list()
    points: list[SweepPoint] = []
    for values in _combinations(sweep):
        for seed in seeds if seeds is not None else [None]:
            spec = copy.deepcopy(sweep.base)
            for path, value in values.items():
                set_path(spec, path, value)
            if seed is not None:
                spec["seed"] = seed
            points.append(SweepPoint(len(points), values, spec))
    return points


def _combinations(sweep: SweepSpec) -> list[dict[str, Any]]:
    paths = list(sweep.axes)
    if sweep.mode == "grid":
        grid = itertools.product(*(_values(sweep.axes[p]) for p in paths))
        return [dict(zip(paths, combo, strict=True)) for combo in grid]
    rng = random.Random(sweep.sample_seed)
    return [{p: _draw(sweep.axes[p], rng) for p in paths} for _ in range(sweep.samples or 0)]


def _values(axis: Any) -> list[Any]:
    return axis.choice if isinstance(axis, Choice) else list(axis)


def _draw(axis: Any, rng: random.Random) -> Any:
    if isinstance(axis, list):
        return rng.choice(axis)
    return axis.draw(rng)


def set_path(spec: dict[str, Any], path: str, value: Any) -> None:
    """Set ``a.b.0.c`` in nested dicts and lists; missing dict levels are created."""
    node: Any = spec
    parts = path.split(".")
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[:depth]) or "the spec"
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise PathError(path, f"{where} is a list of {len(node)}; {part!r} is no index")
            key: Any = int(part)
        elif isinstance(node, dict):
            key = part
            if not last and node.get(key) is None:
                node[key] = {}
        else:
            raise PathError(path, f"{where} is a value, not an object: cannot set {part!r}")
        if last:
            node[key] = copy.deepcopy(value)
        else:
            node = node[key]


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."
