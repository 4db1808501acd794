"""Uploaded CSV and NPZ files become data sets; hostile or broken files are refused, saying why."""

from __future__ import annotations

import io
import struct
import zipfile
from typing import Any

import numpy as np
import pytest
import torch

from optimlab.worker.engine.data.uploads import (
    ParsedUpload,
    UploadError,
    load_upload,
    parse_upload,
)

LIMIT = 100_000


def parse_csv(text: str | bytes, target: str | None = "label", *,
              max_values: int = LIMIT) -> ParsedUpload:
    content = text.encode() if isinstance(text, str) else text
    return parse_upload(content, filename="data.csv", target=target, max_values=max_values)


def npz(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def parse_npz(content: bytes, *, max_values: int = LIMIT,
              target: str | None = None) -> ParsedUpload:
    return parse_upload(content, filename="data.npz", target=target, max_values=max_values)


def refusal(call: Any, *args: Any, **kwargs: Any) -> UploadError:
    with pytest.raises(UploadError) as caught:
        call(*args, **kwargs)
    assert isinstance(caught.value, ValueError)
    return caught.value


# --- CSV ------------------------------------------------------------------------------------

CSV = "height,weight,label\n1.5,60,0\n1.8,80.5,1\n1.6,-3e2,1\n"


def test_csv_columns_keep_their_names_and_the_target_is_taken_out() -> None:
    parsed = parse_csv(CSV)

    dataset = parsed.dataset
    assert parsed.format == "csv"
    assert list(dataset.columns) == ["height", "weight"]
    assert torch.equal(dataset.columns["height"], torch.tensor([1.5, 1.8, 1.6]))
    assert torch.equal(dataset.columns["weight"], torch.tensor([60.0, 80.5, -300.0]))
    assert dataset.targets is not None
    assert dataset.targets.dtype == torch.float32
    assert torch.equal(dataset.targets, torch.tensor([0.0, 1.0, 1.0]))
    assert dataset.task is None
    assert (parsed.rows, parsed.features, parsed.target_columns, parsed.classes) == (3, 2, 1, 2)


def test_csv_target_may_be_any_column_and_real_targets_have_no_classes() -> None:
    parsed = parse_csv(CSV, target="weight")

    assert list(parsed.dataset.columns) == ["height", "label"]
    assert parsed.classes is None
    assert parsed.dataset.targets is not None
    assert parsed.dataset.targets.tolist() == [60.0, 80.5, -300.0]


@pytest.mark.parametrize("header", ["a b,c", "class,c", "sin,c", "_a,c", "1a,c", "x" * 65 + ",c"],
                         ids=["space", "keyword", "function name", "underscore", "digit first",
                              "too long"])
def test_csv_columns_whose_names_cannot_be_inputs_are_x0_x1(header: str) -> None:
    parsed = parse_csv(f"{header},label\n1,2,3\n4,5,6\n")

    assert list(parsed.dataset.columns) == ["x0", "x1"]
    assert parsed.dataset.columns["x1"].tolist() == [2.0, 5.0]


def test_csv_tolerates_a_bom_spaces_crlf_and_blank_lines() -> None:
    text = "\ufeff a , b ,label\r\n 1 , 2 ,0\r\n\r\n3,4,1\r\n"

    parsed = parse_csv(text)

    assert list(parsed.dataset.columns) == ["a", "b"]
    assert parsed.dataset.columns["a"].tolist() == [1.0, 3.0]
    assert parsed.rows == 2


def test_load_upload_gives_the_same_dataset_as_the_upload() -> None:
    parsed = parse_csv(CSV)

    loaded = load_upload(CSV.encode(), "csv", "label")

    assert list(loaded.columns) == list(parsed.dataset.columns)
    assert all(torch.equal(loaded.columns[n], parsed.dataset.columns[n]) for n in loaded.columns)
    assert torch.equal(loaded.targets, parsed.dataset.targets)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "target", "field", "expected"), [
    ("a,b,label\n1,2,3\n4,x7,6\n", "label", "file", ["line 3", "column 'b'", "'x7'"]),
    ("a,b,label\n1,,3\n", "label", "file", ["line 2", "column 'b'", "empty cell"]),
    ("a,b,label\n1,2,3\n4,5\n", "label", "file", ["line 3", "2 cells", "header has 3"]),
    ("a,b,label\n1,2,3,4\n", "label", "file", ["line 2", "4 cells"]),
    ("a,b,label\n1,nan,3\n", "label", "file", ["line 2", "column 'b'", "finite"]),
    ("a,b,label\n1,2,-inf\n", "label", "file", ["line 2", "column 'label'", "finite"]),
    ("a,b,label\n1,1e39,3\n", "label", "file", ["line 2", "column 'b'", "float32"]),
    ("a,b,label\n1,2,3\n", None, "target", ["target", "'label'"]),
    ("a,b,label\n1,2,3\n", "y", "target", ["'y'", "'a', 'b', 'label'"]),
    ("label\n1\n2\n", "label", "file", ["no feature columns"]),
    ("a,b,label\n", "label", "file", ["no data rows"]),
    ("\n\n", "label", "file", ["no header"]),
    ("1,2,3\n4,5,6\n", "3", "file", ["header"]),
    ("a,a,label\n1,2,3\n", "label", "file", ["'a' twice"]),
    ("a,,label\n1,2,3\n", "label", "file", ["column 2 has no name"]),
    ('a,b,label\n1,"2,3\n', "label", "file", ["not valid CSV"]),
], ids=["bad cell", "empty cell", "short row", "long row", "nan", "infinity",
        "beyond float32", "no target", "unknown target", "only the target", "header only",
        "blank", "no header", "duplicate column", "unnamed column", "unclosed quote"])
def test_bad_csv_is_refused_saying_what_and_where(text: str, target: str | None, field: str,
                                                 expected: list[str]) -> None:
    error = refusal(parse_csv, text, target)

    assert error.field == field
    for part in expected:
        assert part in error.message, (part, error.message)


def test_empty_and_non_utf8_files_are_refused() -> None:
    assert "empty" in refusal(parse_csv, b"").message
    assert "UTF-8" in refusal(parse_csv, b"a,label\n\xff\xfe,1\n").message


def test_csv_over_the_value_limit_is_refused() -> None:
    text = "a,b,label\n" + "1,2,3\n" * 10

    assert parse_csv(text, max_values=30).rows == 10
    error = refusal(parse_csv, text, max_values=29)
    assert "29" in error.message


# --- NPZ ------------------------------------------------------------------------------------


def test_npz_tables_become_x_columns() -> None:
    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    y = np.array([0, 1, 1, 2])

    parsed = parse_npz(npz(X=x, y=y))

    dataset = parsed.dataset
    assert parsed.format == "npz"
    assert list(dataset.columns) == ["x0", "x1", "x2"]
    assert torch.equal(dataset.features(), torch.tensor(x, dtype=torch.float32))
    assert dataset.targets is not None
    assert dataset.targets.dtype == torch.float32
    assert torch.equal(dataset.targets, torch.tensor([0.0, 1.0, 1.0, 2.0]))
    assert dataset.image_shape is None
    assert (parsed.rows, parsed.features, parsed.target_columns, parsed.classes) == (4, 3, 1, 3)


def test_npz_with_uncompressed_archive_ints_bools_and_a_vector() -> None:
    buffer = io.BytesIO()
    np.savez(buffer, X=np.array([True, False, True]), y=np.array([1.5, 2.5, 3.5],
                                                                   dtype=np.float16))

    parsed = parse_npz(buffer.getvalue())

    assert list(parsed.dataset.columns) == ["x0"]
    assert parsed.dataset.columns["x0"].tolist() == [1.0, 0.0, 1.0]
    assert parsed.classes is None


def test_npz_multi_column_targets() -> None:
    parsed = parse_npz(npz(X=np.ones((5, 2)), y=np.zeros((5, 3), dtype=np.int32)))

    assert parsed.dataset.targets is not None
    assert parsed.dataset.targets.shape == (5, 3)
    assert parsed.target_columns == 3
    assert parsed.classes is None


@pytest.mark.parametrize(("shape", "image_shape"), [((6, 4, 5), (1, 4, 5)),
                                                    ((6, 3, 4, 5), (3, 4, 5))])
def test_npz_images_are_one_column_with_an_image_shape(
        shape: tuple[int, ...], image_shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(0).random(shape, dtype=np.float32)

    parsed = parse_npz(npz(X=x, y=np.arange(6) % 2))

    dataset = parsed.dataset
    assert list(dataset.columns) == ["x"]
    assert dataset.columns["x"].shape == (6, *image_shape)
    assert torch.equal(dataset.columns["x"].reshape(shape), torch.tensor(x))
    assert dataset.image_shape == image_shape
    assert parsed.features == int(np.prod(image_shape))
    assert dataset.features().shape == (6, parsed.features)
    assert parsed.classes == 2


def test_npz_is_recognised_by_its_content_without_an_extension() -> None:
    content = npz(X=np.ones((2, 2)), y=np.ones(2))

    parsed = parse_upload(content, filename="upload", target=None, max_values=LIMIT)

    assert parsed.format == "npz"
    assert load_upload(content, "npz", None).rows == 2


def object_npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, X=np.array([{"a": 1}, None], dtype=object), y=np.ones(2))
    return buffer.getvalue()


def bytes_npz(**arrays: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in arrays.items():
            archive.writestr(f"{name}.npy", data)
    return buffer.getvalue()


def npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()


def lying_npz() -> bytes:
    """X's header claims 10**12 values; the file holds 16 bytes."""
    return bytes_npz(X=npy_header((10**12,)) + b"\x00" * 16,
                     y=npy_header((2,)) + b"\x00" * 16)


@pytest.mark.parametrize(("content", "expected"), [
    (npz(X=np.ones((3, 2))), ["'y'"]),
    (npz(x=np.ones((3, 2)), y=np.ones(3)), ["'X'"]),
    (object_npz(), ["pickle"]),
    (npz(X=np.array([["a", "b"], ["c", "d"]]), y=np.ones(2)), ["X", "dtype"]),
    (npz(X=np.ones((2, 2), dtype=np.complex64), y=np.ones(2)), ["X", "complex"]),
    (npz(X=np.ones((2, 2)), y=np.array(["a", "b"])), ["y", "dtype"]),
    (npz(X=np.ones((3, 2)), y=np.ones(4)), ["3 rows", "4"]),
    (npz(X=np.array([[1.0, np.nan]]), y=np.ones(1)), ["X", "NaN"]),
    (npz(X=np.ones((2, 2)), y=np.array([np.inf, 1.0])), ["y", "infinite"]),
    (npz(X=np.array([[1e300, 1.0]]), y=np.ones(1)), ["X", "float32"]),
    (npz(X=np.float64(3.0), y=np.ones(1)), ["X has shape []"]),
    (npz(X=np.ones((1, 1, 1, 1, 1)), y=np.ones(1)), ["X has shape"]),
    (npz(X=np.ones((2, 2)), y=np.ones((2, 1, 1))), ["y has shape"]),
    (npz(X=np.ones((0, 2)), y=np.ones(0)), ["no rows"]),
    (npz(X=np.ones((2, 0)), y=np.ones(2)), ["X has no values"]),
    (npz(X=np.zeros((1_000_000, 3)), y=np.zeros(1_000_000)), ["unpacks to", "bytes"]),
    (lying_npz(), ["1000000000002 values"]),
    (bytes_npz(X=b"not an array", y=b"nor this"), ["X is not a readable .npy array"]),
    (b"PK\x03\x04 but not really a zip", ["not an NPZ file"]),
    (b"just text", ["not an NPZ file"]),
], ids=["no y", "no X", "pickled objects", "strings", "complex", "string targets",
        "rows differ", "nan", "infinite target", "beyond float32", "scalar X", "5-D X",
        "3-D y", "no rows", "no features", "huge declared size", "header lies about size",
        "not npy", "broken zip", "not a zip"])
def test_bad_npz_is_refused_saying_what(content: bytes, expected: list[str]) -> None:
    error = refusal(parse_npz, content)

    assert error.field == "file"
    for part in expected:
        assert part in error.message, (part, error.message)


def test_the_huge_declared_size_is_refused_before_unpacking() -> None:
    content = npz(X=np.zeros((1_000_000, 3)), y=np.zeros(1_000_000))
    declared = sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(content)).infolist())

    assert len(content) < 100_000 < LIMIT * 8 < declared
    assert parse_npz(content, max_values=4_000_000).rows == 1_000_000


def test_npz_over_the_value_limit_is_refused() -> None:
    content = npz(X=np.ones((10, 2)), y=np.ones(10))

    assert parse_npz(content, max_values=30).rows == 10
    assert "31 values" not in refusal(parse_npz, content, max_values=29).message
    assert "30 values" in refusal(parse_npz, content, max_values=29).message


def test_npz_targets_come_from_y() -> None:
    content = npz(X=np.ones((2, 2)), y=np.ones(2))

    assert parse_npz(content, target="y").rows == 2
    error = refusal(parse_npz, content, target="label")
    assert error.field == "target"
    assert "'y'" in error.message
