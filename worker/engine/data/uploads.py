"""Uploaded data sets: CSV or NPZ bytes in, a :class:`Dataset` out. Pure: no database.

CSV (UTF-8, comma-separated): a header row naming the columns, then one row per sample;
``target`` names the target column and every other column is a numeric feature. Feature
columns keep their header names when all of them are valid input names (letters, digits,
``_``, not a keyword or a function of the expression language), else they are called
``x0 .. x{F-1}``. Targets are float32 ``[N]``.

NPZ (``numpy.savez[_compressed]``): arrays ``X`` and ``y`` (others are ignored), no pickles.
``X`` is ``[N]`` or ``[N, F]`` (columns ``x0 ..``), or images ``[N, H, W]`` /
``[N, C, H, W]`` (one column ``x`` of shape ``[N, C, H, W]``, ``image_shape`` (C, H, W));
``y`` is ``[N]`` or ``[N, T]``, stored as float32.

The task stays unknown (the loss decides at job time); :class:`ParsedUpload` says how many
classes the targets would have if they are labels.
"""

from __future__ import annotations

import csv
import io
import keyword
import math
import unicodedata
import zipfile
from array import array
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
from numpy.lib import format as npy_format

from optimlab.worker.engine.data.dataset import Dataset
from optimlab.worker.engine.expression import RESERVED_NAMES
from optimlab.worker.limits import active_limits, setting_name

Format = Literal["csv", "npz"]
# Bytes an .npz may declare beyond 8 per allowed value (array headers, zip entries).
NPZ_SLACK_BYTES = 1 << 20
MAX_NAME_CHARS = 64
# At job time the content was already checked against the upload limits.
UNLIMITED = 2**62


class UploadError(ValueError):
    """What is wrong with an uploaded file; ``field`` is the form field to blame."""

    def __init__(self, message: str, *, field: str = "file") -> None:
        self.message = message
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class ParsedUpload:
    format: Format
    dataset: Dataset
    rows: int
    features: int  # values per row, all input columns flattened
    target_columns: int  # 1 for targets [N], T for [N, T]
    classes: int | None  # distinct labels when every target is an integer, else None


def detect_format(content: bytes, filename: str) -> Format:
    """By the file name's extension; by the content (a zip is an NPZ) when it has none known."""
    lowered = filename.lower()
    if lowered.endswith(".npz"):
        return "npz"
    if lowered.endswith(".csv"):
        return "csv"
    return "npz" if content.startswith(b"PK\x03\x04") else "csv"


def parse_upload(content: bytes, *, filename: str, target: str | None,
                 max_values: int, max_columns: int | None = None) -> ParsedUpload:
    """Check and read an uploaded file; :class:`UploadError` says what is wrong with it.

    ``max_columns`` (default: the active ``max_upload_columns``) is checked before the rows
    are read: each column becomes a tensor of its own, so a wide file costs far more memory
    than its values."""
    if not content:
        raise UploadError("the file is empty")
    fmt = detect_format(content, filename)
    columns = active_limits().max_upload_columns if max_columns is None else max_columns
    dataset = _parse(content, fmt, target, max_values=max_values, max_columns=columns)
    assert dataset.targets is not None
    targets = dataset.targets
    return ParsedUpload(format=fmt, dataset=dataset, rows=dataset.rows,
                        features=int(dataset.features().shape[1]),
                        target_columns=1 if targets.dim() == 1 else int(targets.shape[1]),
                        classes=_classes(targets))


def load_upload(content: bytes, format: str, target: str | None) -> Dataset:
    """The data set of a stored upload (checked when it was uploaded)."""
    if format not in ("csv", "npz"):
        raise UploadError(f"unknown format {format!r}")
    return _parse(content, "csv" if format == "csv" else "npz", target, max_values=UNLIMITED,
                  max_columns=UNLIMITED)


def _parse(content: bytes, fmt: Format, target: str | None, *, max_values: int,
           max_columns: int) -> Dataset:
    if fmt == "csv":
        _check_width(content, max_columns)
        return _parse_csv(content, target, max_values=max_values)
    if target is not None and target != "y":
        raise UploadError("an NPZ file's targets are its array 'y'; leave target out",
                          field="target")
    return _parse_npz(content, max_values=max_values, max_columns=max_columns)


def _too_wide(columns: int, max_columns: int) -> UploadError:
    return UploadError(f"{columns} columns exceed the limit of {max_columns} "
                       f"({setting_name('max_upload_columns')})")


def _check_width(content: bytes, max_columns: int) -> None:
    """Refuse a CSV whose first line has too many cells before anything is decoded: its
    commas bound them (a quoted comma counts too, which can only make the check stricter
    for a header of absurd names)."""
    start = len(content) - len(content.lstrip(b"\xef\xbb\xbf\r\n"))
    end = content.find(b"\n", start)
    cells = content.count(b",", start, len(content) if end < 0 else end) + 1
    if cells > max_columns:
        raise _too_wide(cells, max_columns)


def _classes(targets: torch.Tensor) -> int | None:
    if targets.dim() != 1 or not bool((targets == targets.round()).all()):
        return None
    return int(torch.unique(targets).numel())


# --- CSV ------------------------------------------------------------------------------------


def _parse_csv(content: bytes, target: str | None, *, max_values: int) -> Dataset:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UploadError(f"a CSV file must be UTF-8 text (byte {exc.start} is not)") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        while header == []:  # blank lines before the header
            header = next(reader, None)
        if header is None:
            raise UploadError("the file has no header row")
        names = [cell.strip() for cell in header]
        _check_header(names)
        if target is None:
            raise UploadError(f"a CSV upload needs target, the name of the target column "
                              f"(one of {_listed(names)})", field="target")
        if target not in names:
            raise UploadError(f"no column {target!r} in the header (columns: {_listed(names)})",
                              field="target")
        if len(names) < 2:
            raise UploadError(f"no feature columns: the file has only the target {target!r}")
        width = len(names)
        values = array("d")
        lines: list[int] = []
        for row in reader:
            if not row:
                continue  # a blank line
            line = reader.line_num
            if len(row) != width:
                raise UploadError(f"line {line} has {len(row)} cells, the header has {width}")
            if (len(lines) + 1) * width > max_values:
                raise UploadError(f"more than {max_values} values (the limit)")
            try:
                values.extend(map(float, row))
            except ValueError:
                for j, cell in enumerate(row):
                    _number(cell, line=line, column=names[j])  # says which cell
                raise
            lines.append(line)
    except csv.Error as exc:
        raise UploadError(f"line {reader.line_num}: not valid CSV ({exc})") from None
    if not lines:
        raise UploadError("the file has a header but no data rows")
    table = np.frombuffer(values, dtype=np.float64).reshape(len(lines), width)
    with np.errstate(over="ignore"):
        as_float32 = table.astype(np.float32)
    bad = np.argwhere(~np.isfinite(as_float32))
    if bad.size:
        i, j = (int(k) for k in bad[0])
        value = float(table[i, j])
        problem = ("is not a finite number" if not math.isfinite(value)
                   else "is beyond float32's range (about 3.4e38)")
        raise UploadError(f"line {lines[i]}, column {names[j]!r}: {value!r} {problem}")
    t = names.index(target)
    features = [j for j in range(width) if j != t]
    feature_names = [names[j] for j in features]
    if not all(_usable_name(name) for name in feature_names):
        feature_names = [f"x{k}" for k in range(len(features))]
    columns = {name: torch.tensor(as_float32[:, j]) for name, j in zip(feature_names, features,
                                                                          strict=True)}
    return Dataset(columns=columns, targets=torch.tensor(as_float32[:, t]))


def _number(cell: str, *, line: int, column: str) -> None:
    try:
        float(cell)
    except ValueError:
        what = "an empty cell" if not cell.strip() else repr(cell[:40])
        raise UploadError(f"line {line}, column {column!r}: {what} is not a number") from None


def _check_header(names: list[str]) -> None:
    for j, name in enumerate(names):
        if not name:
            raise UploadError(f"the header's column {j + 1} has no name")
        if any(unicodedata.category(c) == "Cc" for c in name):
            # NUL cannot be stored as text, and no column name needs control characters.
            raise UploadError(f"the header's column {j + 1} ({name[:40]!r}) has a control "
                              "character (such as NUL) in its name")
    try:
        for name in names:
            float(name)
    except ValueError:
        pass
    else:
        raise UploadError("the first row must be a header naming the columns; it has only "
                          "numbers")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise UploadError(f"the header names column {name!r} twice")
        seen.add(name)


def _usable_name(name: str) -> bool:
    return (name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_")
            and len(name) <= MAX_NAME_CHARS and name not in RESERVED_NAMES)


def _listed(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:20])
    return shown + (f", ... ({len(names)} in all)" if len(names) > 20 else "")


# --- NPZ ------------------------------------------------------------------------------------


def _parse_npz(content: bytes, *, max_values: int, max_columns: int) -> Dataset:
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except zipfile.BadZipFile:
        raise UploadError("not an NPZ file (not a zip archive)") from None
    with archive:
        members = {info.filename: info for info in archive.infolist()}
        declared = sum(info.file_size for info in members.values())
        allowed = min(max_values, UNLIMITED // 16) * 8 + NPZ_SLACK_BYTES
        if declared > allowed:
            raise UploadError(f"the archive unpacks to {declared} bytes, over the limit of "
                              f"{allowed}")
        missing = [name for name in ("X", "y") if f"{name}.npy" not in members]
        if missing:
            found = sorted(n.removesuffix(".npy") for n in members)
            raise UploadError(f"an NPZ upload needs arrays 'X' and 'y'; missing "
                              f"{' and '.join(map(repr, missing))} (found {found})")
        # The headers first: an array's declared shape and type are checked before numpy
        # allocates room for it.
        shapes = [_check_header_of(archive, members[f"{name}.npy"], name) for name in "Xy"]
        sizes = [math.prod(shape) for shape in shapes]
        if sum(sizes) > max_values:
            raise UploadError(f"{sum(sizes)} values, over the limit of {max_values}")
        if len(shapes[0]) == 2 and shapes[0][1] > max_columns:  # a table: one tensor a column
            raise _too_wide(shapes[0][1], max_columns)
    try:
        with np.load(io.BytesIO(content), allow_pickle=False) as npz:
            x = npz["X"]
            y = npz["y"]
    except ValueError as exc:
        raise UploadError(f"unreadable array ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise UploadError(f"unreadable NPZ file ({exc})") from None
    if x.ndim == 0 or x.ndim > 4:
        raise UploadError(f"X has shape {list(x.shape)}; expected [N], [N, F], [N, H, W] or "
                          "[N, C, H, W]")
    if y.ndim not in (1, 2):
        raise UploadError(f"y has shape {list(y.shape)}; expected [N] or [N, T]")
    n = x.shape[0]
    if n == 0:
        raise UploadError("X has no rows")
    if y.shape[0] != n:
        raise UploadError(f"X has {n} rows and y has {y.shape[0]}")
    if x.size == 0 or y.size == 0:
        raise UploadError(f"{'X' if x.size == 0 else 'y'} has no values in its rows")
    xs = _to_float32(x, what="X")
    ys = _to_float32(y, what="y")
    if xs.ndim <= 2:
        xs = xs.reshape(n, -1)
        columns = {f"x{j}": torch.tensor(xs[:, j]) for j in range(xs.shape[1])}
        return Dataset(columns=columns, targets=torch.tensor(ys))
    images = xs.reshape(n, 1, *xs.shape[1:]) if xs.ndim == 3 else xs
    return Dataset(columns={"x": torch.tensor(images)}, targets=torch.tensor(ys),
                   image_shape=tuple(int(s) for s in images.shape[1:]))


def _check_header_of(archive: zipfile.ZipFile, info: zipfile.ZipInfo,
                     name: str) -> tuple[int, ...]:
    """The shape of the array ``name``, after checking its .npy header."""
    try:
        with archive.open(info) as fp:
            version = npy_format.read_magic(fp)
            if version == (1, 0):
                shape, _, dtype = npy_format.read_array_header_1_0(fp)
            else:
                shape, _, dtype = npy_format.read_array_header_2_0(fp)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, RuntimeError) as exc:
        raise UploadError(f"{name} is not a readable .npy array ({exc})") from None
    if dtype.hasobject:
        raise UploadError(f"{name} holds Python objects (pickles), which are refused; save "
                          "numbers only")
    if dtype.kind not in "biuf":
        raise UploadError(f"{name} has dtype {dtype}; expected numbers (bool, integers or "
                          "floats)")
    return tuple(int(s) for s in shape)


def _to_float32(array: npt.NDArray[np.generic], *, what: str) -> npt.NDArray[np.float32]:
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise UploadError(f"{what} contains NaN or infinite values")
    with np.errstate(over="ignore"):
        converted = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(converted).all():
        raise UploadError(f"{what} holds numbers beyond float32's range (about 3.4e38)")
    return converted
