"""The job spec: what a client submits and what the training engine runs.

Defined once, used by the API (request validation) and the worker (the task
reads the stored spec back through the same model). This module checks
structure and ranges only; what needs torch (expression names and shapes,
optimizer and scheduler keywords) is checked by ``engine.validation``.
"""

from __future__ import annotations

import keyword
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from typing_extensions import TypeAliasType

# Nested lists of numbers: a scalar, a vector, a matrix, ...
NumberArray = TypeAliasType("NumberArray", "float | list[NumberArray]")

MAX_STEPS = 100_000_000
MAX_ARRAY_VALUES = 2_000_000
MAX_EXPRESSION_CHARS = 10_000
MAX_NAMES = 64

Name = Annotated[str, Field(min_length=1, max_length=64)]


class SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def count_values(value: Any, *, field: str) -> int:
    """Count the numbers in a nested list, refusing non-finite ones and ragged shapes."""
    if isinstance(value, list):
        return sum(count_values(item, field=field) for item in value)
    if not math.isfinite(value):
        raise ValueError(f"{field}: non-finite number {value!r}")
    return 1


def check_identifier(name: str, *, what: str) -> str:
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
        raise ValueError(f"{what} {name!r} is not a valid name (letters, digits, '_')")
    return name


class ExpressionModel(SpecModel):
    """A formula over named parameters and input columns, e.g. ``w*u + b``."""

    kind: Literal["expression"]
    expression: str = Field(min_length=1, max_length=MAX_EXPRESSION_CHARS)
    parameters: dict[Name, NumberArray] = Field(min_length=1, max_length=MAX_NAMES)

    @field_validator("parameters")
    @classmethod
    def _check_parameters(cls, value: dict[str, NumberArray]) -> dict[str, NumberArray]:
        total = 0
        for name, initial in value.items():
            check_identifier(name, what="parameter")
            total += count_values(initial, field=name)
        if total > MAX_ARRAY_VALUES:
            raise ValueError(f"{total} parameter values exceed the limit of {MAX_ARRAY_VALUES}")
        return value


class InlineData(SpecModel):
    """Data given in the spec itself: named input columns and targets, one row per sample."""

    kind: Literal["inline"]
    inputs: dict[Name, NumberArray] = Field(default_factory=dict, max_length=MAX_NAMES)
    targets: NumberArray | None = None

    @model_validator(mode="after")
    def _check_sizes(self) -> InlineData:
        total = 0
        for name, column in self.inputs.items():
            check_identifier(name, what="input")
            total += count_values(column, field=name)
        if self.targets is not None:
            total += count_values(self.targets, field="targets")
        if total > MAX_ARRAY_VALUES:
            raise ValueError(f"{total} data values exceed the limit of {MAX_ARRAY_VALUES}")
        return self


class ClassSpec(BaseModel):
    """``name`` picks a class by introspection; every other key is a constructor keyword."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(min_length=1, max_length=64)

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _check_values(self) -> ClassSpec:
        for key, value in self.kwargs.items():
            check_json_value(value, field=key)
        return self


def check_json_value(value: Any, *, field: str, depth: int = 0) -> None:
    """Keyword values are plain JSON; refuse non-finite numbers and absurd nesting."""
    if depth > 8:
        raise ValueError(f"{field}: nested too deeply")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{field}: non-finite number {value!r}")
    if isinstance(value, list):
        if len(value) > 10_000:
            raise ValueError(f"{field}: list longer than 10000 items")
        for item in value:
            check_json_value(item, field=field, depth=depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_json_value(item, field=f"{field}.{key}", depth=depth + 1)
    elif isinstance(value, str) and len(value) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"{field}: string longer than {MAX_EXPRESSION_CHARS} characters")


class OptimizerSpec(ClassSpec):
    """Any class in ``torch.optim``, e.g. ``{"name": "SGD", "lr": 0.01, "momentum": 0.9}``."""


class ScheduleSpec(ClassSpec):
    """Any class in ``torch.optim.lr_scheduler``, e.g. ``{"name": "StepLR", "step_size": 10}``.

    Function-valued keywords (``lr_lambda``) take an expression in ``step``; scheduler-valued
    ones (``schedulers`` of ``SequentialLR``) take a list of schedule specs.
    """


Model = Annotated[ExpressionModel, Field(discriminator="kind")]
Data = Annotated[InlineData, Field(discriminator="kind")]
Loss = Literal["mse", "none"]
Device = Literal["auto", "cpu", "cuda"]


class JobSpec(SpecModel):
    """One training run: model, data, loss, optimizer, schedule, batching, length, seed."""

    name: str = Field(default="", max_length=200)
    model: Model
    data: Data | None = None
    loss: Loss = "mse"
    optimizer: OptimizerSpec
    schedule: ScheduleSpec | None = None
    batch_size: int | None = Field(default=None, ge=1)
    steps: int = Field(ge=1, le=MAX_STEPS)
    seed: int = Field(default=0, ge=0, lt=2**63)
    device: Device = "auto"

    @model_validator(mode="after")
    def _check_loss_needs(self) -> JobSpec:
        if self.loss != "none" and (self.data is None or self.data.targets is None):
            raise ValueError(f"loss {self.loss!r} needs data.targets (use loss 'none' to "
                             "minimise the expression itself)")
        return self
