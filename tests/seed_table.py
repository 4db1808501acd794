"""The seed problem and the table its original script printed, as a reusable check.

The forum post that started optimlab trains ``x**2`` towards 16 with plain SGD
(lr 0.01) for 20 steps and prints, after each step, the parameter (after the
update) and the loss (computed before it). ``tests/data/seed_table.txt`` holds
those 20 lines verbatim. Torch prints 4 decimals, either fixed (``1.6000``) or
scientific (``6.9633e-05``); a number ending in ``.`` (``225.``, ``4.``, ``0.``)
is printed that way only when it is exactly integral, so it must match exactly.

Any test with a parameter and a loss history of the seed problem (engine or
HTTP) calls :func:`assert_matches_seed_table`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

TABLE_PATH = Path(__file__).resolve().parent / "data" / "seed_table.txt"

SEED_SPEC: dict[str, Any] = {
    "model": {"kind": "expression", "expression": "x**2", "parameters": {"x": [1.0]}},
    "data": {"kind": "inline", "targets": [16.0]},
    "loss": "mse",
    "optimizer": {"name": "SGD", "lr": 0.01},
    "steps": 20,
}

_LINE = re.compile(
    r"^tensor\(\[(?P<param>[^\]]+)\], requires_grad=True\) "
    r"tensor\((?P<loss>[^,]+), grad_fn=<MseLossBackward0>\)$"
)
_NUMBER = re.compile(r"^-?\d+(\.\d*)?(e[+-]\d+)?$")


def read_seed_table(path: Path = TABLE_PATH) -> list[tuple[str, str]]:
    """The printed (parameter, loss) pairs, as strings, one per step."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None:
            raise ValueError(f"{path}:{number}: not a line of the seed table: {line!r}")
        rows.append((match["param"], match["loss"]))
    return rows


def printed_as(value: float, printed: str) -> bool:
    """Whether torch, printing with 4 decimals, would show ``value`` as ``printed``."""
    if not _NUMBER.match(printed):
        raise ValueError(f"not a printed number: {printed!r}")
    if printed.endswith("."):
        return value == float(printed)
    if not math.isfinite(value):
        return False
    if "e" in printed:
        mantissa = printed.split("e")[0]
        decimals = len(mantissa.split(".")[1])
        return f"{value:.{decimals}e}" == printed
    decimals = len(printed.split(".")[1])
    return f"{value:.{decimals}f}" == printed


def assert_matches_seed_table(param_x: list[float], loss: list[float]) -> None:
    """Assert that the histories reproduce the printed table, step for step."""
    table = read_seed_table()
    assert len(param_x) == len(table), f"{len(param_x)} parameter values, table has {len(table)}"
    assert len(loss) == len(table), f"{len(loss)} loss values, table has {len(table)}"
    mismatches = [
        f"step {step}: {what} {value!r} is not printed as {printed!r}"
        for step, ((printed_x, printed_loss), x, value_loss) in enumerate(
            zip(table, param_x, loss, strict=True))
        for what, value, printed in (("x", x, printed_x), ("loss", value_loss, printed_loss))
        if not printed_as(value, printed)
    ]
    assert not mismatches, "the seed table differs:\n" + "\n".join(mismatches)
