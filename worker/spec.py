"""The job spec: what a client submits and what the training engine runs.

Defined once, used by the API (request validation) and the worker (the task
reads the stored spec back through the same model). This module checks
structure and ranges only; what needs torch (expression names and shapes,
optimizer and scheduler keywords) is checked by ``engine.validation``.
"""

from __future__ import annotations

import keyword
import math
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from typing_extensions import TypeAliasType

from optimlab.worker.limits import AtMost, active_limits, over_limit

# Nested lists of numbers: a scalar, a vector, a matrix, ...
NumberArray = TypeAliasType("NumberArray", "float | list[NumberArray]")

MAX_NAMES = 64
# The configurable limits (worker/limits.py), as field types whose schema states them.
Steps = Annotated[int, Field(ge=1), AtMost("max_steps")]
ExpressionText = Annotated[str, Field(min_length=1), AtMost("max_expression_chars", "length")]

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
    expression: ExpressionText
    parameters: dict[Name, NumberArray] = Field(min_length=1, max_length=MAX_NAMES)

    @field_validator("parameters")
    @classmethod
    def _check_parameters(cls, value: dict[str, NumberArray]) -> dict[str, NumberArray]:
        total = 0
        for name, initial in value.items():
            check_identifier(name, what="parameter")
            total += count_values(initial, field=name)
        if total > active_limits().max_array_values:
            raise ValueError(over_limit("parameter values", total, "max_array_values"))
        return value


Activation = Literal["relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "silu"]
Width = Annotated[int, Field(ge=1), AtMost("max_hidden_width")]


class LinearModel(SpecModel):
    """``nn.Linear`` from the data's features to its outputs (classes or target columns)."""

    kind: Literal["linear"]
    bias: bool = True


class LogisticModel(SpecModel):
    """Logistic regression: a linear layer trained with BCE (two classes) or cross-entropy."""

    kind: Literal["logistic"]
    bias: bool = True


class MLPModel(SpecModel):
    """Fully connected layers ``hidden`` wide, each followed by ``activation`` (and dropout)."""

    kind: Literal["mlp"]
    hidden: Annotated[list[Width], AtMost("max_hidden_layers", "items")] = Field(
        default_factory=lambda: [64])
    activation: Activation = "relu"
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)


class CNNModel(SpecModel):
    """Small convolutional net for image data (e.g. 8x8 digits): conv blocks, then dense."""

    kind: Literal["cnn"]
    channels: list[Annotated[int, Field(ge=1, le=512)]] = Field(
        default_factory=lambda: [16, 32], min_length=1, max_length=6)
    kernel_size: int = Field(default=3, ge=1, le=11)
    hidden: Width = 64
    activation: Activation = "relu"
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)


class DataOptions(SpecModel):
    """Options every data kind takes: a seeded validation split, standardisation."""

    val_fraction: float = Field(
        default=0.0, ge=0.0, le=0.9,
        description="the fraction of rows held out for validation, drawn from the seed")
    standardize: bool = Field(
        default=False,
        description="scale every input feature to mean 0 and standard deviation 1 (the "
                    "training split's statistics, also applied to the validation split; a "
                    "constant feature is only centred); targets are left as they are")
    standardize_targets: bool = Field(
        default=False,
        description="scale regression targets (each target column) the same way, with the "
                    "training split's statistics; losses and predictions are then in these "
                    "standardised units. Refused for class labels and for data without "
                    "targets")


class InlineData(DataOptions):
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
        if total > active_limits().max_array_values:
            raise ValueError(over_limit("data values", total, "max_array_values"))
        return self


SyntheticGenerator = Literal["linear", "nonlinear", "blobs", "moons", "circles", "spirals"]


class SyntheticData(DataOptions):
    """Generated from the job's seed: regression (linear, nonlinear) or classification."""

    kind: Literal["synthetic"]
    generator: SyntheticGenerator
    samples: int = Field(default=200, ge=2, le=1_000_000)
    features: int = Field(default=2, ge=1, le=1_000)
    classes: int = Field(default=3, ge=2, le=100)
    noise: float = Field(default=0.1, ge=0.0, le=100.0)

    @model_validator(mode="after")
    def _check_size(self) -> SyntheticData:
        if self.samples * self.features > active_limits().max_generated_values:
            raise ValueError(over_limit("values (samples x features)", self.samples * self.features,
                                        "max_generated_values"))
        return self


SklearnName = Literal["digits", "iris", "wine", "breast_cancer", "diabetes"]


class SklearnData(DataOptions):
    """A data set scikit-learn ships inside its package (no network access)."""

    kind: Literal["sklearn"]
    name: SklearnName


class UploadData(DataOptions):
    """A data set uploaded with ``POST /v1/datasets``, named by its id."""

    kind: Literal["upload"]
    dataset_id: str = Field(pattern=r"^[0-9a-f]{64}$")


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
    elif isinstance(value, str) and len(value) > active_limits().max_expression_chars:
        raise ValueError(f"{field}: " + over_limit("characters", len(value),
                                                   "max_expression_chars"))


class OptimizerSpec(ClassSpec):
    """Any class in ``torch.optim``, e.g. ``{"name": "SGD", "lr": 0.01, "momentum": 0.9}``."""


class ScheduleSpec(ClassSpec):
    """Any class in ``torch.optim.lr_scheduler``, e.g. ``{"name": "StepLR", "step_size": 10}``.

    Function-valued keywords (``lr_lambda``) take an expression in ``step``; scheduler-valued
    ones (``schedulers`` of ``SequentialLR``) take a list of schedule specs. ``monitor``
    (ReduceLROnPlateau) picks the metric it watches: the step's ``loss`` or ``val_loss``.
    """

    monitor: Literal["loss", "val_loss"] | None = None


class ParameterGroup(SpecModel):
    """Optimizer settings for some of a built-in model's parameters, e.g. biases."""

    match: str = Field(min_length=1, max_length=200,
                       description="'bias', 'weight', or a glob on parameter names, e.g. '0.*'")
    options: dict[str, Any] = Field(default_factory=dict,
                                    description="optimizer keywords for this group, e.g. lr")

    @model_validator(mode="after")
    def _check_values(self) -> ParameterGroup:
        for key, value in self.options.items():
            check_json_value(value, field=key)
        return self


class StopSpec(SpecModel):
    """When to stop before the last step; each reason gives its own ``summary.outcome``."""

    loss_below: float | None = Field(default=None, description="reached_target")
    max_seconds: float | None = Field(default=None, gt=0, description="stopped")
    patience: int | None = Field(
        default=None, ge=1, description="stopped: evaluations without a better val_loss")
    min_delta: float = Field(default=0.0, ge=0.0)
    converge_tol: float | None = Field(
        default=None, ge=0, description="converged: update_norm at most this ...")
    converge_steps: int = Field(default=10, ge=1, description="... for this many steps")


class SummarySpec(SpecModel):
    """What the finished job's summary measures besides the usual figures.

    ``converged_at`` is the first step from which every recorded loss up to the last lies
    within ``tolerance`` x |final loss| of the final loss, when that settled stretch lasts
    at least ``converge_window`` steps (default: a tenth of the steps done, at least 10;
    for runs of fewer than 40 steps a quarter of them, at least 2); otherwise (a loss
    still moving at the end, a run shorter than the window, a final loss that is NaN or
    infinite) it is null. NaN counts as outside; with a final loss of exactly 0 only exact
    zeros are inside. The seed example (exactly 0 from step 14 of 20) converged at 14.
    """

    thresholds: list[float] | None = Field(
        default=None, max_length=20,
        description="losses whose first crossing is reported (steps_to); default: the "
                    "initial loss divided by 10, 100 and 1000")
    tolerance: float = Field(
        default=0.01, gt=0, le=1,
        description="converged_at: the loss must stay within this fraction of its final "
                    "value (|loss - final| <= tolerance x |final|)")
    converge_window: Annotated[int, Field(ge=2), AtMost("max_steps")] | None = Field(
        default=None,
        description="converged_at: the fewest steps the loss must have stayed within "
                    "`tolerance` of its final value, up to the last step (else "
                    "converged_at is null); default: a tenth of the steps done, at least 10, "
                    "and for runs of fewer than 40 steps a quarter of them (at least 2)")


class InitFrom(SpecModel):
    """Start the model from another job's checkpoint (to fine-tune, or to branch an
    experiment); the optimizer, schedule and every other state start fresh."""

    job: uuid.UUID = Field(description="the id of the job")
    step: Annotated[int, Field(ge=0), AtMost("max_steps")] = Field(
                      description="a step that job checkpointed (its summary's "
                                  "checkpoint_step is the latest)")


Tag = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[\w.:=-]+$")]
# A job's bookkeeping, shared with PATCH /v1/jobs/{id}, which may change them.
JobName = Annotated[str, Field(max_length=200)]
Tags = Annotated[list[Tag], Field(max_length=20)]


Model = Annotated[ExpressionModel | LinearModel | LogisticModel | MLPModel | CNNModel,
                  Field(discriminator="kind")]
Data = Annotated[InlineData | SyntheticData | SklearnData | UploadData,
                 Field(discriminator="kind")]
Loss = Literal["mse", "l1", "huber", "cross_entropy", "bce_with_logits", "none"]
Device = Literal["auto", "cpu", "cuda"]


class JobSpec(SpecModel):
    """One training run: model, data, loss, optimizer, schedule, batching, length, seed."""

    name: JobName = ""
    tags: Tags = Field(default_factory=list)
    model: Model
    data: Data | None = None
    loss: Loss | None = Field(
        default=None, description="default: mse for regression and expressions with targets, "
                                  "cross_entropy (or BCE for logistic on two classes) for "
                                  "classification, none for an expression without targets")
    optimizer: OptimizerSpec
    parameter_groups: list[ParameterGroup] = Field(default_factory=list, max_length=16)
    schedule: ScheduleSpec | None = None
    batch_size: int | None = Field(default=None, ge=1)
    drop_last: bool = False
    steps: Steps | None = None
    epochs: Steps | None = None
    eval_every: int | None = Field(default=None, ge=1)
    clip_grad_norm: float | None = Field(default=None, gt=0)
    stop: StopSpec | None = None
    diverge_factor: float | None = Field(default=None, gt=1)
    summary: SummarySpec = Field(default_factory=SummarySpec)
    seed: int = Field(default=0, ge=0, lt=2**63)
    device: Device = "auto"
    checkpoint_every: Steps | None = Field(
        default=None,
        description="checkpoint the run every this many steps (as well as every "
                    "checkpoint_seconds), for a killed run to resume from; at least the "
                    "service's OPTIMLAB_CHECKPOINT_MIN_STEPS (default 1), and never more often "
                    "than every OPTIMLAB_CHECKPOINT_MIN_SECONDS (default 1 s) whatever it says")
    checkpoint_seconds: float | None = Field(
        default=None, gt=0, le=7 * 24 * 3600,
        description="checkpoint the run every this many seconds; default: the service's "
                    "OPTIMLAB_CHECKPOINT_SECONDS (default 60); at least "
                    "OPTIMLAB_CHECKPOINT_MIN_SECONDS (default 1)")
    init_from: InitFrom | None = Field(
        default=None, description="start the model's parameters from another job's "
                                  "checkpoint at a step it stored")

    @model_validator(mode="after")
    def _check_length(self) -> JobSpec:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("give exactly one of steps and epochs")
        return self

    @model_validator(mode="after")
    def _check_loss_needs(self) -> JobSpec:
        inline = self.data is None or isinstance(self.data, InlineData)
        has_targets = isinstance(self.data, InlineData) and self.data.targets is not None
        if inline and self.loss not in (None, "none") and not has_targets:
            raise ValueError(f"loss {self.loss!r} needs data.targets (use loss 'none' to "
                             "minimise the expression itself)")
        return self
