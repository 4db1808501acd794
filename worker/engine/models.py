"""Models as ``nn.Module``: an expression over named parameters, or a built-in network.

Built-in networks are created after ``torch.manual_seed(seed)`` in a fixed order, so a
plain script that seeds and builds the same ``nn.Sequential`` gets the same weights.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from optimlab.worker.engine.expression import Expression, parse_expression
from optimlab.worker.spec import CNNModel, ExpressionModel, LinearModel, LogisticModel, MLPModel
from optimlab.worker.spec_errors import SpecError

# Model inputs: named columns for expressions, a feature matrix for built-in networks.
Inputs = dict[str, torch.Tensor] | torch.Tensor

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU, "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU, "silu": nn.SiLU,
}
BuiltIn = LinearModel | LogisticModel | MLPModel | CNNModel


class ExpressionModule(nn.Module):
    """Parameters in a ``ParameterDict`` (names are the user's), evaluated by the expression."""

    def __init__(self, expression: Expression, parameters: Mapping[str, torch.Tensor]) -> None:
        super().__init__()
        self.expression = expression
        # Pairs, not a dict: ParameterDict sorts a plain dict's keys, and the order matters
        # (LBFGS's flat vectors, norms): it is the spec's.
        self.values = nn.ParameterDict([(name, nn.Parameter(t)) for name, t in parameters.items()])

    def forward(self, columns: Mapping[str, torch.Tensor]) -> torch.Tensor:
        env = {**self.values, **columns}
        return self.expression.evaluate(env)  # type: ignore[no-any-return]

    def named_values(self) -> list[tuple[str, nn.Parameter]]:
        return list(self.values.items())


def build_expression_model(spec: ExpressionModel, initial: Mapping[str, torch.Tensor],
                           columns: list[str]) -> ExpressionModule:
    clash = set(initial) & set(columns)
    if clash:
        raise SpecError(("data", "inputs", sorted(clash)[0]),
                        "an input column has the same name as a parameter")
    try:
        expression = parse_expression(spec.expression, allowed_names=[*initial, *columns])
    except ValueError as exc:
        raise SpecError(("model", "expression"), str(exc)) from None
    return ExpressionModule(expression, initial)


def build_network(spec: BuiltIn, *, features: int, outputs: int,
                  image_shape: tuple[int, ...] | None) -> nn.Module:
    if isinstance(spec, LinearModel | LogisticModel):
        return nn.Linear(features, outputs, bias=spec.bias)
    if isinstance(spec, MLPModel):
        return nn.Sequential(*_dense(features, spec.hidden, outputs, spec.activation,
                                     spec.dropout))
    return _cnn(spec, outputs=outputs, image_shape=image_shape)


def _dense(width: int, hidden: list[int], outputs: int, activation: str,
           dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for size in hidden:
        layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    return [*layers, nn.Linear(width, outputs)]


def _cnn(spec: CNNModel, *, outputs: int, image_shape: tuple[int, ...] | None) -> nn.Module:
    if image_shape is None or len(image_shape) != 3:
        raise SpecError(("model", "kind"), "a cnn needs image data (e.g. sklearn 'digits', or "
                                           "an uploaded npz whose X is [N, C, H, W] or [N, H, W])")
    channels, height, width = image_shape
    layers: list[nn.Module] = [nn.Unflatten(1, image_shape)]
    for size in spec.channels:
        layers += [nn.Conv2d(channels, size, spec.kernel_size, padding=spec.kernel_size // 2),
                   ACTIVATIONS[spec.activation]()]
        if height >= 2 and width >= 2:  # halve while there is something to halve
            layers.append(nn.MaxPool2d(2))
            height, width = height // 2, width // 2
        channels = size
    layers.append(nn.Flatten())
    layers += _dense(channels * height * width, [spec.hidden], outputs, spec.activation,
                     spec.dropout)
    return nn.Sequential(*layers)


def named_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Parameters with the names users see: an expression's own names, else torch's."""
    if isinstance(model, ExpressionModule):
        return model.named_values()
    return list(model.named_parameters())
