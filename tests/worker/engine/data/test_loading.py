"""Every data kind becomes the Dataset the spec describes: shapes, dtypes, determinism."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from sklearn import datasets as sk

from optimlab.worker.engine.data import Dataset, load_dataset
from optimlab.worker.engine.data.loading import MAX_SYNTHETIC_VALUES
from optimlab.worker.spec import InlineData, SklearnData, SyntheticData, UploadData
from optimlab.worker.spec_errors import SpecError

GENERATORS = ["linear", "nonlinear", "blobs", "moons", "circles", "spirals"]
SKLEARN = ["digits", "iris", "wine", "breast_cancer", "diabetes"]


def synthetic(generator: str, **options: Any) -> SyntheticData:
    return SyntheticData.model_validate({"kind": "synthetic", "generator": generator, **options})


def inline(**fields: Any) -> InlineData:
    return InlineData.model_validate({"kind": "inline", **fields})


def same(a: Dataset, b: Dataset) -> bool:
    assert a.targets is not None
    assert b.targets is not None
    return (list(a.columns) == list(b.columns)
            and all(torch.equal(a.columns[n], b.columns[n]) for n in a.columns)
            and torch.equal(a.targets, b.targets))


# --- no data, inline ------------------------------------------------------------------------


def test_no_data_is_an_empty_dataset() -> None:
    dataset = load_dataset(None, seed=0, source=None)

    assert dataset.columns == {}
    assert dataset.targets is None
    assert dataset.rows == 0
    assert dataset.task is None


def test_inline_keeps_names_order_and_values_as_float32() -> None:
    data = inline(inputs={"v": [[1, 2], [3, 4], [5, 6]], "u": [0.5, 1.5, 2.5]},
                  targets=[1, 2, 3])

    dataset = load_dataset(data, seed=0, source=None)

    assert list(dataset.columns) == ["v", "u"]
    assert torch.equal(dataset.columns["v"], torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    assert torch.equal(dataset.columns["u"], torch.tensor([0.5, 1.5, 2.5]))
    assert dataset.targets is not None
    assert dataset.targets.dtype == torch.float32
    assert torch.equal(dataset.targets, torch.tensor([1.0, 2.0, 3.0]))
    assert all(c.dtype == torch.float32 for c in dataset.columns.values())
    assert dataset.task is None
    assert dataset.classes is None
    assert dataset.rows == 3
    assert dataset.features().shape == (3, 3)


def test_inline_targets_alone_and_inputs_alone() -> None:
    targets_only = load_dataset(inline(targets=[16.0]), seed=0, source=None)
    inputs_only = load_dataset(inline(inputs={"u": [1.0, 2.0]}), seed=0, source=None)

    assert targets_only.columns == {}
    assert targets_only.rows == 1
    assert inputs_only.targets is None
    assert inputs_only.rows == 2


@pytest.mark.parametrize(("fields", "loc"), [
    ({"inputs": {"u": [[1.0], [1.0, 2.0]]}}, ("data", "inputs", "u")),
    ({"inputs": {"u": [1.0, 2.0]}, "targets": [[1.0], [2.0, 3.0]]}, ("data", "targets")),
    ({"inputs": {"u": [1.0, 2.0]}, "targets": [1.0, 2.0, 3.0]}, ("data",)),
    ({"inputs": {"u": [1.0, 2.0], "v": [1.0]}}, ("data",)),
    ({"inputs": {"u": []}}, ("data", "inputs", "u")),
    ({"targets": 16.0}, ("data", "targets")),
], ids=["ragged input", "ragged targets", "targets rows differ", "columns rows differ",
        "empty column", "scalar targets"])
def test_bad_inline_data_names_the_field(fields: dict[str, Any], loc: tuple[str, ...]) -> None:
    with pytest.raises(SpecError) as caught:
        load_dataset(inline(**fields), seed=0, source=None)

    assert caught.value.loc == loc


# --- synthetic ------------------------------------------------------------------------------


@pytest.mark.parametrize("generator", GENERATORS)
def test_synthetic_shapes_dtypes_and_task(generator: str) -> None:
    features = 2 if generator in ("moons", "circles", "spirals") else 5
    dataset = load_dataset(synthetic(generator, samples=120, features=features), seed=3,
                           source=None)

    assert list(dataset.columns) == [f"x{j}" for j in range(features)]
    assert all(c.shape == (120,) and c.dtype == torch.float32 for c in dataset.columns.values())
    assert dataset.targets is not None
    assert dataset.features().shape == (120, features)
    assert torch.isfinite(dataset.features()).all()
    if generator in ("linear", "nonlinear"):
        assert dataset.task == "regression"
        assert dataset.classes is None
        assert dataset.targets.dtype == torch.float32
        assert dataset.targets.shape == (120,)
    else:
        expected = 3 if generator in ("blobs", "spirals") else 2
        assert dataset.task == "classification"
        assert dataset.classes == expected
        assert dataset.targets.dtype == torch.int64
        assert dataset.targets.shape == (120,)
        assert sorted(dataset.targets.unique().tolist()) == list(range(expected))
    assert dataset.image_shape is None


@pytest.mark.parametrize("generator", GENERATORS)
def test_synthetic_data_depends_on_the_seed_alone(generator: str) -> None:
    data = synthetic(generator, samples=50)

    first = load_dataset(data, seed=7, source=None)
    np.random.seed(123)
    torch.manual_seed(123)
    numpy_state = np.random.get_state()[1].copy()  # type: ignore[index]
    torch_state = torch.get_rng_state()
    again = load_dataset(data, seed=7, source=None)
    other = load_dataset(data, seed=8, source=None)

    assert same(first, again)
    assert not torch.equal(first.features(), other.features())
    # the global generators were neither used nor reseeded
    assert np.array_equal(np.random.get_state()[1], numpy_state)  # type: ignore[index]
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_seeds_beyond_32_bits_work_and_differ() -> None:
    data = synthetic("moons", samples=40)

    a = load_dataset(data, seed=2**40, source=None)
    b = load_dataset(data, seed=2**40 + 1, source=None)
    c = load_dataset(data, seed=2**63 - 1, source=None)

    assert not torch.equal(a.features(), b.features())
    assert torch.isfinite(c.features()).all()


def test_linear_targets_are_linear_in_the_inputs() -> None:
    dataset = load_dataset(synthetic("linear", samples=100, features=4, noise=0.0), seed=1,
                           source=None)
    x = dataset.features().double()
    assert dataset.targets is not None
    design = torch.cat([x, torch.ones(100, 1, dtype=torch.float64)], dim=1)

    solution = torch.linalg.lstsq(design, dataset.targets.double().unsqueeze(1)).solution
    residual = design @ solution - dataset.targets.double().unsqueeze(1)

    assert residual.abs().max() < 1e-5
    assert solution[:4].abs().min() > 1e-3  # every feature matters


def test_nonlinear_targets_follow_the_documented_formula() -> None:
    dataset = load_dataset(synthetic("nonlinear", samples=80, features=3, noise=0.0), seed=2,
                           source=None)
    x = dataset.features().double()
    expected = torch.sin(2 * x).sum(dim=1) + 0.5 * x[:, 0] ** 2

    assert dataset.targets is not None
    assert torch.allclose(dataset.targets.double(), expected, atol=1e-5)


def test_noise_changes_regression_targets_only_by_noise() -> None:
    quiet = load_dataset(synthetic("linear", samples=60, noise=0.0), seed=4, source=None)
    noisy = load_dataset(synthetic("linear", samples=60, noise=1.0), seed=4, source=None)

    assert torch.equal(quiet.features(), noisy.features())
    assert quiet.targets is not None
    assert noisy.targets is not None
    assert (quiet.targets - noisy.targets).abs().max() > 0.1


def test_moons_and_circles_are_sklearns_generators_with_the_seed() -> None:
    moons = load_dataset(synthetic("moons", samples=90, noise=0.2), seed=5, source=None)
    circles = load_dataset(synthetic("circles", samples=90, noise=0.05), seed=5, source=None)
    x_moons, y_moons = sk.make_moons(n_samples=90, noise=0.2, random_state=5)
    x_circles, y_circles = sk.make_circles(n_samples=90, noise=0.05, factor=0.5, random_state=5)

    assert torch.equal(moons.features(), torch.tensor(x_moons, dtype=torch.float32))
    assert torch.equal(moons.targets, torch.tensor(y_moons))  # type: ignore[arg-type]
    assert torch.equal(circles.features(), torch.tensor(x_circles, dtype=torch.float32))
    assert torch.equal(circles.targets, torch.tensor(y_circles))  # type: ignore[arg-type]


def test_blobs_are_sklearns_blobs_plus_noise() -> None:
    data = synthetic("blobs", samples=100, features=3, classes=4, noise=0.0)
    dataset = load_dataset(data, seed=6, source=None)
    x, y = sk.make_blobs(n_samples=100, n_features=3, centers=4, random_state=6)
    noisy = load_dataset(synthetic("blobs", samples=100, features=3, classes=4, noise=0.5),
                         seed=6, source=None)

    assert torch.equal(dataset.features(), torch.tensor(x, dtype=torch.float32))
    assert torch.equal(dataset.targets, torch.tensor(y))  # type: ignore[arg-type]
    assert dataset.classes == 4
    assert torch.equal(noisy.targets, dataset.targets)  # type: ignore[arg-type]
    assert not torch.equal(noisy.features(), dataset.features())


def test_spirals_have_one_arm_per_class() -> None:
    dataset = load_dataset(synthetic("spirals", samples=300, classes=5, noise=0.0), seed=0,
                           source=None)
    assert dataset.targets is not None

    assert dataset.classes == 5
    assert torch.bincount(dataset.targets).tolist() == [60] * 5
    radius = dataset.features().norm(dim=1)
    assert radius.max() <= 1.0 + 1e-6  # t in [0, 1] is the radius


@pytest.mark.parametrize(("generator", "options", "loc"), [
    ("moons", {"features": 3}, ("data", "features")),
    ("circles", {"features": 5}, ("data", "features")),
    ("spirals", {"features": 3}, ("data", "features")),
    ("moons", {"classes": 3}, ("data", "classes")),
    ("circles", {"classes": 4}, ("data", "classes")),
])
def test_incompatible_synthetic_options_name_the_field(
        generator: str, options: dict[str, Any], loc: tuple[str, ...]) -> None:
    with pytest.raises(SpecError) as caught:
        load_dataset(synthetic(generator, **options), seed=0, source=None)

    assert caught.value.loc == loc


def test_moons_accept_two_classes_said_out_loud_and_the_default() -> None:
    explicit = load_dataset(synthetic("moons", classes=2, features=2), seed=0, source=None)
    default = load_dataset(synthetic("moons"), seed=0, source=None)

    assert same(explicit, default)


def test_the_engine_refuses_huge_synthetic_sets_the_spec_let_through() -> None:
    # e.g. a spec stored before the spec itself checked the size
    data = SyntheticData.model_construct(kind="synthetic", generator="linear",
                                         samples=MAX_SYNTHETIC_VALUES, features=2)

    with pytest.raises(SpecError) as caught:
        load_dataset(data, seed=0, source=None)

    assert caught.value.loc == ("data", "samples")


# --- scikit-learn ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", SKLEARN)
def test_sklearn_sets_are_sklearns_arrays(name: str) -> None:
    bunch = getattr(sk, f"load_{name}")()

    dataset = load_dataset(SklearnData(kind="sklearn", name=name), seed=0, source=None)

    n, f = bunch.data.shape
    assert list(dataset.columns) == [f"x{j}" for j in range(f)]
    assert all(c.shape == (n,) and c.dtype == torch.float32 for c in dataset.columns.values())
    assert torch.equal(dataset.features(), torch.tensor(bunch.data, dtype=torch.float32))
    assert dataset.targets is not None
    if name == "diabetes":
        assert dataset.task == "regression"
        assert dataset.classes is None
        assert dataset.targets.dtype == torch.float32
        assert torch.equal(dataset.targets, torch.tensor(bunch.target, dtype=torch.float32))
    else:
        assert dataset.task == "classification"
        assert dataset.classes == len(np.unique(bunch.target))
        assert dataset.targets.dtype == torch.int64
        assert torch.equal(dataset.targets, torch.tensor(bunch.target))
    assert dataset.image_shape == ((1, 8, 8) if name == "digits" else None)


def test_sklearn_classes() -> None:
    classes = {name: load_dataset(SklearnData(kind="sklearn", name=name), seed=0,
                                  source=None).classes for name in SKLEARN}

    assert classes == {"digits": 10, "iris": 3, "wine": 3, "breast_cancer": 2,
                       "diabetes": None}


def test_sklearn_loads_hand_out_fresh_tensors() -> None:
    data = SklearnData(kind="sklearn", name="iris")
    first = load_dataset(data, seed=0, source=None)
    first.columns["x0"].fill_(-1.0)
    assert first.targets is not None
    first.targets.fill_(99)

    second = load_dataset(data, seed=0, source=None)

    assert (second.columns["x0"] > 0).all()
    assert second.targets is not None
    assert second.targets.max() == 2


# --- uploads --------------------------------------------------------------------------------


class FakeSource:
    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.asked: list[str] = []

    def load(self, dataset_id: str) -> Dataset:
        self.asked.append(dataset_id)
        return self.dataset


def test_uploads_come_from_the_source() -> None:
    stored = Dataset(columns={"x0": torch.arange(3.0)}, targets=torch.ones(3))
    source = FakeSource(stored)
    dataset_id = "ab" * 32

    dataset = load_dataset(UploadData(kind="upload", dataset_id=dataset_id), seed=0,
                           source=source)

    assert dataset is stored
    assert source.asked == [dataset_id]


def test_uploads_without_a_source_are_refused() -> None:
    with pytest.raises(SpecError) as caught:
        load_dataset(UploadData(kind="upload", dataset_id="0" * 64), seed=0, source=None)

    assert caught.value.loc == ("data", "dataset_id")
    assert "service" in caught.value.message
