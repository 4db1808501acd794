"""CSV text of metric points, a chunk of one series at a time.

A chunk is formatted by one ``orjson.dumps`` of a flat list,
``[step, ";name;", value, "|", step, ";name;", value, "|", ...]``, whose floats are the
shortest text that reads back as the same float (repr's digits; orjson writes ``1e-7``
and ``0.000091`` where repr writes ``1e-07`` and ``9.1e-05``), and one ``bytes.translate``
that deletes the JSON's quotes, commas and brackets and turns ``;`` into the CSV's commas
and ``|`` into line ends: no Python code runs per value (formatting row by row made the
export 10-17 times slower than the JSON body). NaN and infinities, which JSON has no
number for, go in as the strings ``nan``, ``inf`` and ``-inf`` (Python's and numpy's
spelling, as before) and come out unquoted with the rest. A name holding any of those
characters, or one that JSON escapes, goes in as a placeholder that is replaced by the
(quoted) name at the end.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import orjson

from optimlab.service.jobs.history import Chunk

# Names that pass through the JSON and the translation untouched and need no CSV quoting.
_PLAIN = re.compile(r"[^\x00-\x1f\x7f\",;|\[\]\\]+")
# Stands for any other name: no number, nan or inf reads "N".
_PLACEHOLDER = "N"
_TABLE = bytes.maketrans(b";|", b",\n")
_DELETE = b'",[]'


def header(*, smoothed: bool) -> bytes:
    return b"step,name,value,smoothed\n" if smoothed else b"step,name,value\n"


def rows(chunk: Chunk) -> bytes:
    """The chunk's lines ``step,name,value[,smoothed]``, each ending in a newline."""
    n = len(chunk.steps)
    if not n:
        return b""
    plain = _PLAIN.fullmatch(chunk.name) is not None
    columns: list[Sequence[object]] = [chunk.steps,
                                       [f";{chunk.name if plain else _PLACEHOLDER};"] * n,
                                       _json_safe(chunk.values)]
    if chunk.smoothed is not None:
        columns += [[";"] * n, _json_safe(chunk.smoothed)]
    width = len(columns) + 1
    flat: list[object] = ["|"] * (width * n)  # what is left of them ends the lines
    for offset, column in enumerate(columns):
        flat[offset::width] = column
    text = orjson.dumps(flat).translate(_TABLE, _DELETE)
    if plain:
        return text
    return text.replace(b",N,", b"," + field(chunk.name).encode() + b",")


def field(text: str) -> str:
    """A CSV field: quoted, quotes doubled, when it holds a comma, a quote or a newline."""
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(c in text for c in ',"\n') else text


def _json_safe(values: list[float]) -> Sequence[float | str]:
    """The values, NaN and infinities as their text (orjson would write null)."""
    if all(map(math.isfinite, values)):
        return values
    return [v if math.isfinite(v) else repr(v) for v in values]
