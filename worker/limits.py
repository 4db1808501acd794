"""The limits a job spec and an upload must keep: one model, read wherever they are checked.

``Settings`` inherits these fields, so each is also an ``OPTIMLAB_*`` variable (for example
``OPTIMLAB_MAX_STEPS``) with its default written here once. The API and the worker make
their settings' limits the active ones while they validate or run a spec (``use_limits``);
the spec's validators and the engine read them with ``active_limits``. Outside such a block
(a script, a test) the defaults apply. Nothing here reads the environment at import.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema


class Limits(BaseModel):
    model_config = ConfigDict(frozen=True)

    max_steps: int = Field(default=100_000_000, ge=1,
                           description="Most steps of one job (also epochs x batches).")
    max_parameters: int = Field(default=50_000_000, ge=1,
                                description="Most parameters of a built-in model.")
    max_hidden_width: int = Field(default=4096, ge=1,
                                  description="Widest hidden layer of an MLP or CNN.")
    max_hidden_layers: int = Field(default=16, ge=1,
                                   description="Most hidden layers of an MLP.")
    max_array_values: int = Field(
        default=2_000_000, ge=1,
        description="Most numbers in a spec's expression parameters, and in its inline data.")
    max_generated_values: int = Field(
        default=20_000_000, ge=1, description="Most samples x features of synthetic data.")
    max_upload_values: int = Field(
        default=16_000_000, ge=1, description="Most values (rows x columns) of an upload.")
    max_upload_columns: int = Field(default=10_000, ge=2,
                                    description="Most columns of an uploaded CSV or NPZ.")
    max_expression_chars: int = Field(
        default=10_000, ge=1, description="Longest expression (model or schedule function).")
    max_expression_depth: int = Field(default=100, ge=2,
                                      description="Deepest nesting of an expression.")
    max_expression_nodes: int = Field(default=5_000, ge=1,
                                      description="Most syntax nodes of an expression.")
    max_exponent_bits: int = Field(
        default=4096, ge=64, description="Largest integer (in bits) an expression may make, "
                                         "e.g. by a constant power such as 9**9**9.")
    max_expression_seconds: float = Field(
        default=0.5, gt=0, description="Longest time the parser may spend on one expression.")


DEFAULT_LIMITS = Limits()
_ACTIVE: contextvars.ContextVar[Limits] = contextvars.ContextVar("optimlab_limits",
                                                                 default=DEFAULT_LIMITS)


def active_limits() -> Limits:
    return _ACTIVE.get()


@contextlib.contextmanager
def use_limits(limits: Limits) -> Iterator[Limits]:
    token = _ACTIVE.set(limits)
    try:
        yield limits
    finally:
        _ACTIVE.reset(token)


def setting_name(field: str) -> str:
    """The environment variable that sets a limit: ``OPTIMLAB_MAX_STEPS``."""
    return f"OPTIMLAB_{field.upper()}"


def over_limit(what: str, value: int | float, field: str) -> str:
    """The message of a refusal, e.g. "5000 parameter values exceed the limit of 100
    (OPTIMLAB_MAX_ARRAY_VALUES)": how much of what, the limit, and how to change it."""
    limit = getattr(active_limits(), field)
    return f"{value} {what} exceed the limit of {limit} ({setting_name(field)})"


Measure = Literal["value", "length", "items"]
_SCHEMA_KEYS: dict[str, str] = {"value": "maximum", "length": "maxLength", "items": "maxItems"}


@dataclass(frozen=True)
class AtMost:
    """``Annotated`` metadata: a number, a string's length or a list's length is at most the
    active limit ``field``. The JSON schema (hence the OpenAPI document) states the limit
    active when it is made, so a server's schema says what that server refuses."""

    field: str
    measure: Measure = "value"

    def __get_pydantic_core_schema__(self, source: Any,
                                     handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema[_SCHEMA_KEYS[self.measure]] = getattr(active_limits(), self.field)
        return json_schema

    def _check(self, value: Any) -> Any:
        size = value if self.measure == "value" else len(value)
        limit = getattr(active_limits(), self.field)
        if size > limit:
            what = {"value": "", "length": " characters", "items": " items"}[self.measure]
            raise PydanticCustomError(
                "limit", "over the limit of {limit} ({setting}): {size}{what}",
                {"size": size, "what": what, "limit": limit,
                 "setting": setting_name(self.field)})
        return value
