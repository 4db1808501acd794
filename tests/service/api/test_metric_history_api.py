"""GET /v1/jobs/{id}/metrics with a step range, a point budget, smoothing, NDJSON and CSV."""

from __future__ import annotations

import csv
import io
import math
import random
import uuid
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from optimlab.service.db import metrics
from tests.service.api.test_jobs_api import submit

N = 1200


def job_with_history(client: TestClient, db: Engine) -> tuple[str, dict[int, float]]:
    """A job with a spiky 'loss' of N steps (a NaN and an inf among them) and a constant lr."""
    rng = random.Random(42)
    loss = {s: 4.0 / (1 + s / 100) + rng.gauss(0, 0.02) for s in range(N)}
    loss[317], loss[901] = 75.0, -75.0
    loss[640], loss[641] = math.nan, math.inf
    job_id = submit(client)["id"]
    with db.begin() as conn:
        metrics.write_points(conn, uuid.UUID(job_id),
                             [(s, "loss", v) for s, v in loss.items()]
                             + [(s, "lr", 0.05) for s in range(N)])
    return job_id, loss


def ema(values: list[float | None], weight: float) -> list[float | None]:
    """Reference: TensorBoard's loop; null (NaN or inf on the wire) passes through."""
    out: list[float | None] = []
    last, count = 0.0, 0
    for v in values:
        if v is None:
            out.append(None)
            continue
        last, count = last * weight + (1 - weight) * v, count + 1
        out.append(last / (1 - weight ** count))
    return out


def matches(got: list[float | None], want: list[float | None]) -> bool:
    return len(got) == len(want) and all(
        b is None if a is None else b is not None and math.isclose(a, b, rel_tol=1e-9)
        for a, b in zip(got, want, strict=True))


def get(client: TestClient, job_id: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/v1/jobs/{job_id}/metrics", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_without_parameters_the_body_is_unchanged(client: TestClient, db: Engine) -> None:
    job_id, _loss = job_with_history(client, db)

    body = get(client, job_id)

    assert set(body) == {"job_id", "series"}
    assert [set(s) for s in body["series"]] == [{"name", "steps", "values"}] * 2
    first = body["series"][0]
    assert first["name"] == "loss"
    assert first["steps"] == list(range(N))
    assert first["values"][317] == 75.0
    assert first["values"][640] is None


def test_max_points_downsamples_and_says_how(client: TestClient, db: Engine) -> None:
    job_id, loss = job_with_history(client, db)

    body = get(client, job_id, max_points=100, names="loss")

    (series,) = body["series"]
    assert set(series) == {"name", "steps", "values", "downsampled"}
    assert len(series["steps"]) <= 100
    assert series["steps"] == sorted(set(series["steps"]))
    down = series["downsampled"]
    assert down["method"].startswith("m4")
    assert down["points_in_range"] == N
    # the narrowest buckets whose points fit: at least the 25 of max_points // 4
    assert down["buckets"] == math.ceil(N / down["bucket_width"]) >= 25
    assert len(series["steps"]) >= 95
    kept = dict(zip(series["steps"], series["values"], strict=True))
    assert kept[317] == 75.0
    assert kept[901] == -75.0
    assert 0 in kept
    assert N - 1 in kept
    assert 640 in kept  # the divergence (NaN, above inf) is its bucket's max: null here
    for step, value in kept.items():
        assert value == (loss[step] if math.isfinite(loss[step]) else None)


def test_a_budget_that_fits_returns_every_point(client: TestClient, db: Engine) -> None:
    job_id, _ = job_with_history(client, db)

    body = get(client, job_id, max_points=5000, names="lr")

    assert body["series"] == [{"name": "lr", "steps": list(range(N)), "values": [0.05] * N,
                               "downsampled": None}]


def test_a_step_range(client: TestClient, db: Engine) -> None:
    job_id, _ = job_with_history(client, db)

    ranged = get(client, job_id, from_step=100, to_step=199)["series"]
    tail = get(client, job_id, from_step=1150, max_points=8, names="loss")["series"]
    whole = get(client, job_id)["series"]

    assert [s["steps"] for s in ranged] == [list(range(100, 200))] * 2
    assert ranged[0]["values"] == whole[0]["values"][100:200]
    assert "downsampled" not in ranged[0]
    assert tail[0]["steps"][0] == 1150
    assert tail[0]["steps"][-1] == N - 1
    assert len(tail[0]["steps"]) <= 8


def test_smoothing_adds_the_ema_of_the_returned_points(client: TestClient,
                                                      db: Engine) -> None:
    job_id, _ = job_with_history(client, db)

    full = get(client, job_id, smoothing=0.9, names="loss")["series"][0]
    thinned = get(client, job_id, smoothing=0.6, max_points=200, names="loss,lr")["series"]

    assert set(full) == {"name", "steps", "values", "smoothed"}
    assert matches(full["smoothed"], ema(full["values"], 0.9))
    assert full["smoothed"][640] is None
    assert full["smoothed"][641] is None
    loss, lr = thinned
    assert loss["downsampled"] is not None
    assert matches(loss["smoothed"], ema(loss["values"], 0.6))
    assert lr["smoothed"] == lr["values"]  # a constant series is left exactly as it is


@pytest.mark.parametrize(("params", "field"), [
    ({"max_points": 3}, "max_points"),
    ({"max_points": 100_001}, "max_points"),
    ({"max_points": "many"}, "max_points"),
    ({"smoothing": 1}, "smoothing"),
    ({"smoothing": -0.1}, "smoothing"),
    ({"smoothing": "nan"}, "smoothing"),
    ({"from_step": -1}, "from_step"),
    ({"to_step": 2**63}, "to_step"),
    ({"from_step": 10, "to_step": 9}, "to_step"),
    ({"format": "xml"}, "format"),
])
def test_bad_parameters_are_422_naming_the_field(client: TestClient, db: Engine,
                                                 params: dict[str, Any], field: str) -> None:
    job_id, _ = job_with_history(client, db)
    for path in ("metrics", "metrics.csv"):
        if path == "metrics.csv" and field == "format":
            continue
        response = client.get(f"/v1/jobs/{job_id}/{path}", params=params)
        assert response.status_code == 422, response.text
        assert response.json()["message"].startswith(f"{field}:"), response.json()


def test_an_unknown_job_is_404_in_every_format(client: TestClient) -> None:
    missing = uuid.uuid4()
    for params in ({"max_points": 10}, {"format": "ndjson"}, {"from_step": 3}):
        assert client.get(f"/v1/jobs/{missing}/metrics", params=params).status_code == 404
    assert client.get(f"/v1/jobs/{missing}/metrics.csv",
                      params={"max_points": 10}).status_code == 404


def ndjson(client: TestClient, job_id: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"/v1/jobs/{job_id}/metrics", params={**params, "format": "ndjson"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert response.text.endswith("\n")
    return [orjson.loads(line) for line in response.text.splitlines()]


def as_series(rows: list[dict[str, Any]], key: str = "value") -> dict[str, dict[int, Any]]:
    series: dict[str, dict[int, Any]] = {}
    for row in rows:
        series.setdefault(row["name"], {})[row["step"]] = row[key]
    return series


def from_json(body: dict[str, Any], key: str = "values") -> dict[str, dict[int, Any]]:
    return {s["name"]: dict(zip(s["steps"], s[key], strict=True)) for s in body["series"]}


@pytest.mark.parametrize("params", [
    {},
    {"from_step": 500, "to_step": 700},
    {"max_points": 64, "smoothing": 0.8},
    {"smoothing": 0.5, "names": "lr,loss"},
])
def test_ndjson_lines_are_the_json_history(client: TestClient, db: Engine,
                                           params: dict[str, Any]) -> None:
    job_id, _ = job_with_history(client, db)

    rows = ndjson(client, job_id, **params)
    body = get(client, job_id, **params)

    assert set(rows[0]) == {"name", "step", "value"} | ({"smoothed"} if "smoothing" in params
                                                         else set())
    assert [r["name"] for r in rows] == sorted(r["name"] for r in rows)  # series by name
    for name in ("loss", "lr"):
        steps = [r["step"] for r in rows if r["name"] == name]
        assert steps == sorted(set(steps))
    assert as_series(rows) == from_json(body)
    if "smoothing" in params:
        assert as_series(rows, "smoothed") == from_json(body, "smoothed")


def read_csv(client: TestClient, job_id: str, **params: Any) -> list[dict[str, str]]:
    response = client.get(f"/v1/jobs/{job_id}/metrics.csv", params=params)
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.text)))


def test_csv_takes_the_same_parameters(client: TestClient, db: Engine) -> None:
    job_id, _ = job_with_history(client, db)

    plain = read_csv(client, job_id)
    ranged = read_csv(client, job_id, from_step=10, to_step=12, names="loss")
    thinned = read_csv(client, job_id, max_points=64, smoothing=0.7)
    body = get(client, job_id, max_points=64, smoothing=0.7)

    assert list(plain[0]) == ["step", "name", "value"]
    assert len(plain) == 2 * N
    assert [(r["step"], r["name"]) for r in ranged] == [("10", "loss"), ("11", "loss"),
                                                        ("12", "loss")]
    assert list(thinned[0]) == ["step", "name", "value", "smoothed"]
    expected = from_json(body, "smoothed")
    for row in thinned:
        want = expected[row["name"]][int(row["step"])]
        got = float(row["smoothed"])
        assert (want is None and not math.isfinite(got)) or got == want
    assert {(r["name"], int(r["step"])) for r in thinned} == {
        (name, step) for name, points in expected.items() for step in points}


TRICKY = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 2.225073858507201e-308, 1e-300,
          1.5e-7, 0.1 + 0.2, 1 / 3, 123456789012345680.0, 1e16, 1e22, 1.7976931348623157e308,
          -1.7976931348623157e308, math.nan, math.inf, -math.inf, 2.0**-1074 * 3, 1e-5,
          4.35, 100.0, -12.5e-3]


def bits(value: float) -> int:
    return int(np.array(value).view(np.int64))


def test_csv_values_read_back_bit_for_bit(client: TestClient, db: Engine) -> None:
    rng = np.random.default_rng(5)
    random_floats = rng.integers(-2**63, 2**63 - 1, 3000, dtype=np.int64).view(np.float64)
    values = TRICKY + [float(v) for v in random_floats if math.isfinite(v)]
    job_id = submit(client)["id"]
    with db.begin() as conn:
        metrics.write_points(conn, uuid.UUID(job_id),
                             [(s, "loss", v) for s, v in enumerate(values)])

    rows = read_csv(client, job_id, names="loss")

    assert [int(r["step"]) for r in rows] == list(range(len(values)))
    for row, value in zip(rows, values, strict=True):
        got = float(row["value"])
        if math.isnan(value):
            assert row["value"] == "nan"
        else:
            assert bits(got) == bits(value), (row["value"], value)
    texts = {r["value"] for r in rows}
    assert {"-0.0", "5e-324", "1e-300", "inf", "-inf", "nan"} <= texts
    # the shortest digits that read back, as repr's (orjson writes 9.1e-05 as 0.000091)
    assert all(digits(r["value"]) == digits(repr(v)) for r, v in zip(rows, values, strict=True))


def digits(text: str) -> str:
    mantissa = text.split("e")[0].lstrip("-").replace(".", "")
    return mantissa.strip("0") or "0"


def test_csv_quotes_names_that_need_it(client: TestClient, db: Engine) -> None:
    names = ['a,b', 'say "hi"', "two\nlines", 'nan"', 'N', "plain", '"-inf"', "é"]
    job_id = submit(client)["id"]
    with db.begin() as conn:
        metrics.write_points(conn, uuid.UUID(job_id),
                             [(s, name, v) for name in names
                              for s, v in enumerate([0.0, -math.inf, 2.0])])

    response = client.get(f"/v1/jobs/{job_id}/metrics.csv", params={"smoothing": 0.5})
    rows = list(csv.reader(io.StringIO(response.text)))

    assert rows[0] == ["step", "name", "value", "smoothed"]
    assert rows[1:] == [[str(s), name, v, sm] for name in sorted(names)
                        for s, v, sm in ((0, "0.0", "0.0"), (1, "-inf", "-inf"),
                                          (2, "2.0", "1.3333333333333333"))]
    assert '"a,b"' in response.text
    assert '"say ""hi"""' in response.text


@pytest.mark.parametrize("params", [
    {}, {"smoothing": 0.9}, {"from_step": 777, "to_step": 4321}, {"max_points": 500},
    {"max_points": 500, "smoothing": 0.3, "from_step": 10}])
def test_csv_is_the_json_history_across_many_chunks(client: TestClient, db: Engine,
                                                   params: dict[str, Any]) -> None:
    # 12,000 points in stored batches of 1 to 700 (so the export crosses chunk and
    # 256 KiB piece boundaries), NaN and inf among them, and a second series.
    rng = random.Random(9)
    job_id = submit(client)["id"]
    values = {s: rng.gauss(0, 1) * 10.0 ** rng.randint(-30, 30) for s in range(12_000)}
    values[100], values[5000], values[5001] = math.nan, math.inf, -math.inf
    start = 0
    with db.begin() as conn:
        while start < 12_000:
            part = range(start, min(12_000, start + rng.randint(1, 700)))
            metrics.write_points(conn, uuid.UUID(job_id),
                                 [(s, "loss", values[s]) for s in part]
                                 + [(s, "lr", 0.5) for s in part])
            start = part.stop

    rows = read_csv(client, job_id, **params)
    body = get(client, job_id, **params)

    def number(text: str) -> float | None:
        value = float(text)
        return value if math.isfinite(value) else None

    for key, column in (("values", "value"), ("smoothed", "smoothed")):
        if key == "smoothed" and "smoothing" not in params:
            assert "smoothed" not in rows[0]
            continue
        got: dict[str, dict[int, Any]] = {}
        for row in rows:
            got.setdefault(row["name"], {})[int(row["step"])] = number(row[column])
        assert got == from_json(body, key)
    assert [r["name"] for r in rows] == sorted(r["name"] for r in rows)
