"""Turn a spec's model, data and loss into tensors and a differentiable objective."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from optimlab.worker.engine.errors import Loc, SpecError
from optimlab.worker.engine.expression import Expression, parse_expression
from optimlab.worker.spec import JobSpec, NumberArray

Batch = torch.Tensor | None  # row indices of the batch; None is the whole data set

LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse": F.mse_loss,
}


@dataclass
class Problem:
    """Parameters, data and an objective: ``objective(batch)`` is the loss to minimise."""

    parameters: dict[str, torch.Tensor]
    inputs: dict[str, torch.Tensor]
    targets: torch.Tensor | None
    expression: Expression
    loss: str
    size: int  # number of samples (rows); 1 when there is no data

    def output(self, batch: Batch) -> torch.Tensor:
        env: dict[str, torch.Tensor] = dict(self.parameters)
        if batch is None:
            env.update(self.inputs)
        else:
            env.update((name, column[batch]) for name, column in self.inputs.items())
        return self.expression.evaluate(env)  # type: ignore[no-any-return]

    def objective(self, batch: Batch) -> torch.Tensor:
        output = self.output(batch)
        if self.loss == "none":
            return output
        assert self.targets is not None  # guaranteed by JobSpec
        targets = self.targets if batch is None else self.targets[batch]
        return LOSSES[self.loss](output, targets)

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters.values())


def to_tensor(value: NumberArray, *, loc: Loc,
              device: torch.device | str) -> torch.Tensor:
    try:
        return torch.tensor(value, dtype=torch.float32, device=device)
    except (ValueError, TypeError) as exc:
        raise SpecError(loc, f"not a rectangular array of numbers ({exc})") from None


def build_problem(spec: JobSpec, *, device: torch.device | str = "cpu") -> Problem:
    model = spec.model
    parameters = {
        name: to_tensor(value, loc=("model", "parameters", name), device=device).requires_grad_()
        for name, value in model.parameters.items()
    }
    data = spec.data
    inputs: dict[str, torch.Tensor] = {}
    targets = None
    if data is not None:
        inputs = {name: to_tensor(column, loc=("data", "inputs", name), device=device)
                  for name, column in data.inputs.items()}
        if data.targets is not None:
            targets = to_tensor(data.targets, loc=("data", "targets"), device=device)
    clash = set(parameters) & set(inputs)
    if clash:
        raise SpecError(("data", "inputs", sorted(clash)[0]),
                          "an input column has the same name as a parameter")
    try:
        expression = parse_expression(model.expression, allowed_names=[*parameters, *inputs])
    except ValueError as exc:
        raise SpecError(("model", "expression"), str(exc)) from None
    return Problem(parameters=parameters, inputs=inputs, targets=targets,
                   expression=expression, loss=spec.loss, size=_size(inputs, targets))


def _size(inputs: Mapping[str, torch.Tensor], targets: torch.Tensor | None) -> int:
    columns = {f"data.inputs.{name}": t for name, t in inputs.items()}
    if targets is not None:
        columns["data.targets"] = targets
    sizes = {name: (t.shape[0] if t.dim() else 0) for name, t in columns.items()}
    if not sizes:
        return 1
    if 0 in sizes.values():
        name = next(n for n, s in sizes.items() if s == 0)
        raise SpecError(tuple(name.split(".")), "data needs at least one row")
    if len(set(sizes.values())) > 1:
        described = ", ".join(f"{n}: {s}" for n, s in sizes.items())
        raise SpecError(("data",), f"columns have different numbers of rows ({described})")
    return next(iter(sizes.values()))
