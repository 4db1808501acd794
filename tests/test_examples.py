"""The example specs of the README stay valid as the spec evolves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from examples.figures import EXAMPLES as FOLDER
from examples.figures import example_names
from optimlab.worker.engine import validate_spec
from optimlab.worker.spec import JobSpec

# Every spec of examples/ (results.json, the figures they give, is not one).
EXAMPLES = [FOLDER / f"{name}.json" for name in example_names()]


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_is_a_valid_job(path: Path) -> None:
    validate_spec(JobSpec.model_validate(json.loads(path.read_text())))
