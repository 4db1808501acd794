"""Specs as a caller has them: a dict, a pydantic model, or a JSON or YAML file."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

SpecLike = Mapping[str, Any] | BaseModel | str | os.PathLike[str]
SUFFIXES = (".json", ".yaml", ".yml")


class SpecFileError(ValueError):
    """A spec file that cannot be read as a spec; the message names the file."""


def load_spec(spec: SpecLike) -> dict[str, Any]:
    """The JSON object to send for ``spec``: a mapping as it is, a pydantic model
    (``JobSpec``, ``SweepSpec``) as the fields it was given, a path read as JSON or YAML."""
    if isinstance(spec, Mapping):
        return dict(spec)
    if isinstance(spec, BaseModel):
        # Only the fields set: the server fills in the defaults, as for a dict.
        return spec.model_dump(mode="json", exclude_unset=True)
    if isinstance(spec, str | os.PathLike):
        return read_spec_file(Path(spec))
    raise TypeError(f"a spec is a dict, a pydantic model or a path, not {type(spec).__name__}")


def read_spec_file(path: Path) -> dict[str, Any]:
    """A spec file's object; SpecFileError for anything else."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise SpecFileError(f"{path}: a spec file ends in .json, .yaml or .yml")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecFileError(f"{path}: {exc.strerror or exc}") from exc
    loaded = _parse(path, text, yaml_file=suffix != ".json")
    if not isinstance(loaded, dict):
        raise SpecFileError(f"{path}: a spec is a mapping (a JSON object), not "
                         f"{type(loaded).__name__}")
    return loaded


def _parse(path: Path, text: str, *, yaml_file: bool) -> Any:
    if not yaml_file:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecFileError(f"{path}: not JSON: {exc}") from exc
    import yaml  # only for YAML files

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecFileError(f"{path}: not YAML: {exc}") from exc
