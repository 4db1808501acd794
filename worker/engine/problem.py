"""Turn a spec's data, model and loss into a trainable problem: model, splits, objective."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from optimlab.worker.engine.data import Dataset, DatasetSource, load_dataset, prepare_split
from optimlab.worker.engine.losses import (
    REGRESSION,
    LossPlan,
    correct,
    loss_value,
    plan_loss,
    prepare_targets,
)
from optimlab.worker.engine.models import (
    ExpressionModule,
    Inputs,
    build_expression_model,
    build_network,
    named_parameters,
)
from optimlab.worker.limits import active_limits, over_limit
from optimlab.worker.spec import ExpressionModel, JobSpec, NumberArray
from optimlab.worker.spec_errors import Loc, SpecError

Batch = torch.Tensor | None  # row indices of the batch; None is the whole training split


@dataclass(frozen=True)
class Part:
    """One split, on the device, in the form the model reads."""

    inputs: Inputs
    targets: torch.Tensor | None
    rows: int

    def select(self, batch: Batch) -> tuple[Inputs, torch.Tensor | None]:
        if batch is None:
            return self.inputs, self.targets
        inputs = ({name: column[batch] for name, column in self.inputs.items()}
                  if isinstance(self.inputs, dict) else self.inputs[batch])
        return inputs, None if self.targets is None else self.targets[batch]


@dataclass
class Problem:
    model: nn.Module
    plan: LossPlan
    train: Part
    val: Part | None

    def objective(self, batch: Batch) -> torch.Tensor:
        """The loss on a batch of the training split (the whole split for ``None``)."""
        inputs, targets = self.train.select(batch)
        return loss_value(self.plan, self.model(inputs), targets)

    @torch.no_grad()
    def evaluate(self, part: Part) -> tuple[float, float | None]:
        """Loss (and accuracy, for classification) on a whole split, in eval mode."""
        self.model.eval()
        try:
            output = self.model(part.inputs)
            loss = loss_value(self.plan, output, part.targets).item()
            accuracy = None
            if self.plan.classification and part.targets is not None:
                accuracy = correct(self.plan, output, part.targets).item() / part.rows
        finally:
            self.model.train()
        return loss, accuracy

    @property
    def parameters(self) -> list[tuple[str, nn.Parameter]]:
        return named_parameters(self.model)

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for _, p in self.parameters)


@dataclass(frozen=True)
class PreparedData:
    """What a job's data, loss and model kind make before any model exists: the same for
    every job of a sweep that shares them (its seed too), whatever its optimizer."""

    plan: LossPlan
    train_data: Dataset  # the training split as loaded: the model's input shape
    train: Part
    val: Part | None


def prepare_data(spec: JobSpec, *, device: torch.device | str = "cpu",
                 source: DatasetSource | None = None) -> PreparedData:
    data = load_dataset(spec.data, seed=spec.seed, source=source)
    plan = plan_loss(spec, data)
    if spec.data is not None and spec.data.standardize_targets and plan.name not in REGRESSION:
        raise SpecError(("data", "standardize_targets"),
                        f"loss {plan.name!r} " + ("uses no targets" if plan.name == "none" else
                                                  "trains on class labels") +
                        "; only regression targets (mse, l1, huber) can be standardised")
    split = prepare_split(data, spec.data, seed=spec.seed)
    expression = isinstance(spec.model, ExpressionModel)
    if not expression and not split.train.columns:
        raise SpecError(("data",), f"a {spec.model.kind} model needs input features")
    _check_size(spec, split.train, plan)
    train, val = (None if d is None else _part(d, plan, expression=expression, device=device)
                  for d in (split.train, split.val))
    assert train is not None
    return PreparedData(plan=plan, train_data=split.train, train=train, val=val)


def build_problem(spec: JobSpec, *, device: torch.device | str = "cpu",
                  source: DatasetSource | None = None,
                  prepared: PreparedData | None = None) -> Problem:
    """``prepared``: this spec's ``prepare_data``, when the caller has it already."""
    if prepared is None:
        prepared = prepare_data(spec, device=device, source=source)
    # Seeded right before the model is built, as a script seeds before `nn.Sequential(...)`.
    seed_torch(spec.seed, device)
    model = _build_model(spec, prepared.train_data, prepared.plan).to(device)
    return Problem(model=model, plan=prepared.plan, train=prepared.train, val=prepared.val)


def seed_torch(seed: int, device: torch.device | str) -> None:
    """``torch.manual_seed``, which is what a plain script calls. The model is built on the
    CPU either way; for a CPU run only the CPU generator is seeded, because seeding the
    accelerators too (lazily, with a stack trace recorded per call) costs ~0.2 ms, more
    than building a small model, and a sweep builds one per point."""
    if torch.device(device).type == "cpu":
        torch.default_generator.manual_seed(seed)
    else:
        torch.manual_seed(seed)


def _build_model(spec: JobSpec, train: Dataset, plan: LossPlan) -> nn.Module:
    if isinstance(spec.model, ExpressionModel):
        initial = {name: to_tensor(value, loc=("model", "parameters", name))
                   for name, value in spec.model.parameters.items()}
        return build_expression_model(spec.model, initial, list(train.columns))
    return build_network(spec.model, features=train.features().shape[1], outputs=plan.outputs,
                         image_shape=train.image_shape)


def _check_size(spec: JobSpec, train: Dataset, plan: LossPlan) -> None:
    """Refuse absurdly large networks before allocating them (counted on the meta device)."""
    if isinstance(spec.model, ExpressionModel) or not train.columns:
        return
    with torch.device("meta"):
        network = build_network(spec.model, features=_feature_count(train),
                                outputs=plan.outputs, image_shape=train.image_shape)
    count = sum(p.numel() for p in network.parameters())
    if count > active_limits().max_parameters:
        raise SpecError(("model",), over_limit("parameters", count, "max_parameters"))


def _feature_count(data: Dataset) -> int:
    return sum(int(c[0].numel()) if c.dim() > 1 else 1 for c in data.columns.values())


def _part(data: Dataset, plan: LossPlan, *, expression: bool,
          device: torch.device | str) -> Part:
    data = data.to(device)
    inputs: Inputs = dict(data.columns) if expression else data.features()
    targets = prepare_targets(plan, data.targets, expression=expression)
    return Part(inputs=inputs, targets=targets, rows=data.rows)


def to_tensor(value: NumberArray, *, loc: Loc) -> torch.Tensor:
    try:
        return torch.tensor(value, dtype=torch.float32)
    except (ValueError, TypeError) as exc:
        raise SpecError(loc, f"not a rectangular array of numbers ({exc})") from None


__all__ = ["Batch", "ExpressionModule", "Part", "PreparedData", "Problem", "build_problem",
           "prepare_data", "to_tensor"]
