"""What the engine can run, described from the code itself: the source of GET /v1/catalog.

Optimizers and schedulers come from introspecting torch (their keywords, defaults and the
first line of their docstrings); models, data kinds and losses from the spec's schema.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, get_args

from pydantic import BaseModel
from torch.optim.lr_scheduler import ReduceLROnPlateau

from optimlab.worker.engine.losses import CLASSIFICATION, REGRESSION
from optimlab.worker.engine.registry import (
    LENGTH_KEYWORDS,
    keyword_parameters,
    optimizer_classes,
    scheduler_classes,
)
from optimlab.worker.spec import Data, Loss, Model, SklearnName, SyntheticGenerator

LOSS_NOTES = {
    "mse": "mean squared error (regression)",
    "l1": "mean absolute error (regression)",
    "huber": "Huber loss, delta 1 (regression)",
    "cross_entropy": "softmax cross-entropy on class labels (classification)",
    "bce_with_logits": "binary cross-entropy on one logit (two classes)",
    "none": "minimise the model's own output (an expression such as Rosenbrock)",
}


def catalog() -> dict[str, Any]:
    return {
        "models": _union(Model),
        "data": _union(Data),
        "sklearn_datasets": list(get_args(SklearnName)),
        "synthetic_generators": list(get_args(SyntheticGenerator)),
        "losses": [{"name": name, "description": LOSS_NOTES[name],
                    "task": "regression" if name in REGRESSION else
                    "classification" if name in CLASSIFICATION else None}
                   for name in get_args(Loss)],
        "optimizers": [_describe(name, cls) for name, cls in optimizer_classes().items()],
        "schedulers": [_describe_scheduler(name, cls)
                       for name, cls in scheduler_classes().items()],
    }


def _union(annotated: Any) -> list[dict[str, Any]]:
    union = get_args(annotated)[0]
    described = []
    for model in get_args(union):
        assert issubclass(model, BaseModel)
        schema = model.model_json_schema()
        properties = {k: v for k, v in schema.get("properties", {}).items() if k != "kind"}
        for key, info in model.model_fields.items():
            # JSON schema leaves out defaults made by a factory (mlp hidden, cnn channels).
            if key in properties and "default" not in properties[key] and \
                    info.default_factory is not None:
                properties[key] = {**properties[key],
                                   "default": info.get_default(call_default_factory=True)}
        kind = model.model_fields["kind"].annotation
        described.append({"kind": get_args(kind)[0], "description": _first_line(model),
                          "fields": properties, "required": [
                              r for r in schema.get("required", []) if r != "kind"]})
    return described


def _describe(name: str, cls: type) -> dict[str, Any]:
    parameters = []
    for key, parameter in keyword_parameters(cls).items():
        entry: dict[str, Any] = {"name": key, "required":
                                 parameter.default is inspect.Parameter.empty}
        if not entry["required"]:
            entry["default"] = _json(parameter.default)
        annotation = parameter.annotation
        if annotation is not inspect.Parameter.empty:
            entry["type"] = annotation.__name__ if isinstance(annotation, type) else str(annotation)
        if key in LENGTH_KEYWORDS:
            entry["required"] = False
            entry["note"] = "defaults to the job's number of steps"
        parameters.append(entry)
    return {"name": name, "description": _first_line(cls), "parameters": parameters}


def _describe_scheduler(name: str, cls: type) -> dict[str, Any]:
    described = _describe(name, cls)
    if issubclass(cls, ReduceLROnPlateau):
        described["parameters"].append({
            "name": "monitor", "required": False, "default": "loss", "type": "str",
            "note": "optimlab's own: the metric it watches, 'loss' (every step) or 'val_loss' "
                    "(at evaluations; needs eval_every and data.val_fraction)"})
    return described


def _first_line(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    return " ".join(doc.split("\n\n")[0].split())


def _json(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)
