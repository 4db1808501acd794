"""The validation split and standardisation are the documented plain-PyTorch steps, bit for bit."""

from __future__ import annotations

import pytest
import torch

from optimlab.worker.engine.data import Dataset, Split, prepare_split
from optimlab.worker.spec import DataOptions
from optimlab.worker.spec_errors import SpecError


def options(val_fraction: float = 0.0, standardize: bool = False,
            standardize_targets: bool = False) -> DataOptions:
    return DataOptions(val_fraction=val_fraction, standardize=standardize,
                       standardize_targets=standardize_targets)


def make_dataset(n: int, *, seed: int = 0) -> Dataset:
    """Columns of several shapes (one constant, one image-like) and int64 labels."""
    g = torch.Generator().manual_seed(1000 + seed)
    return Dataset(
        columns={
            "row": torch.arange(n, dtype=torch.float32),
            "u": torch.randn(n, generator=g) * 3.0 + 5.0,
            "pair": torch.randn(n, 2, generator=g),
            "constant": torch.full((n,), 7.25),
            "image": torch.rand(n, 1, 2, 2, generator=g),
        },
        targets=torch.randint(0, 3, (n,), generator=g),
        task="classification", classes=3, image_shape=(1, 2, 2))


def make_regression(n: int, *, seed: int = 0, outputs: int = 1) -> Dataset:
    """Float targets, one column (``[N]``) or several (``[N, T]``, one of them constant)."""
    g = torch.Generator().manual_seed(2000 + seed)
    u = torch.randn(n, generator=g) * 2.0 - 1.0
    if outputs == 1:
        targets = 40.0 * u + 300.0 + torch.randn(n, generator=g)
    else:
        targets = torch.stack([u * k + 10.0 * k for k in range(1, outputs)]
                              + [torch.full((n,), 3.5)], dim=1)
    return Dataset(columns={"u": u, "pair": torch.randn(n, 2, generator=g)},
                   targets=targets, task="regression")


def plain_pytorch(columns: dict[str, torch.Tensor], targets: torch.Tensor, *,
                  val_fraction: float, standardize: bool, seed: int,
                  standardize_targets: bool = False
                  ) -> tuple[dict[str, torch.Tensor], torch.Tensor,
                             dict[str, torch.Tensor] | None, torch.Tensor | None]:
    """What a script would write, following the module's docstring step by step."""
    train_x, train_y = dict(columns), targets
    val_x: dict[str, torch.Tensor] | None = None
    val_y: torch.Tensor | None = None
    n = targets.shape[0]
    if val_fraction > 0:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        n_val = max(1, round(n * val_fraction))
        val_rows = perm[:n_val].sort().values
        train_rows = perm[n_val:].sort().values
        train_x = {k: v[train_rows] for k, v in columns.items()}
        train_y = targets[train_rows]
        val_x = {k: v[val_rows] for k, v in columns.items()}
        val_y = targets[val_rows]
    if standardize:
        for k in list(train_x):
            mean = train_x[k].mean(dim=0)
            std = train_x[k].std(dim=0, unbiased=False)
            std = torch.where(std > 0, std, 1.0)
            train_x[k] = (train_x[k] - mean) / std
            if val_x is not None:
                val_x[k] = (val_x[k] - mean) / std
    if standardize_targets:
        mean = train_y.mean(dim=0)
        std = train_y.std(dim=0, unbiased=False)
        std = torch.where(std > 0, std, 1.0)
        train_y = (train_y - mean) / std
        if val_y is not None:
            val_y = (val_y - mean) / std
    return train_x, train_y, val_x, val_y


def assert_identical(dataset: Dataset, columns: dict[str, torch.Tensor],
                     targets: torch.Tensor) -> None:
    assert list(dataset.columns) == list(columns)
    for name in columns:
        assert dataset.columns[name].dtype == columns[name].dtype, name
        assert torch.equal(dataset.columns[name], columns[name]), name
    assert dataset.targets is not None
    assert dataset.targets.dtype == targets.dtype
    assert torch.equal(dataset.targets, targets)


CASES = [(n, fraction, standardize, seed)
         for n, fraction in [(10, 0.25), (7, 0.1), (100, 0.2), (5, 0.05), (33, 0.5),
                             (1000, 0.9), (3, 0.3)]
         for standardize in (False, True)
         for seed in (0, 1, 2**40)]


@pytest.mark.parametrize(("n", "fraction", "standardize", "seed"), CASES)
def test_split_and_standardize_match_the_plain_pytorch_steps(
        n: int, fraction: float, standardize: bool, seed: int) -> None:
    dataset = make_dataset(n, seed=seed % 7)

    split = prepare_split(dataset, options(fraction, standardize), seed=seed)

    assert dataset.targets is not None
    train_x, train_y, val_x, val_y = plain_pytorch(
        dataset.columns, dataset.targets, val_fraction=fraction, standardize=standardize,
        seed=seed)
    assert_identical(split.train, train_x, train_y)
    assert split.val is not None
    assert val_x is not None
    assert val_y is not None
    assert_identical(split.val, val_x, val_y)


@pytest.mark.parametrize("seed", [0, 3, 99])
def test_standardize_alone_matches_the_plain_pytorch_steps(seed: int) -> None:
    dataset = make_dataset(50, seed=seed)

    split = prepare_split(dataset, options(standardize=True), seed=seed)

    assert dataset.targets is not None
    train_x, train_y, _, _ = plain_pytorch(dataset.columns, dataset.targets, val_fraction=0.0,
                                           standardize=True, seed=seed)
    assert split.val is None
    assert_identical(split.train, train_x, train_y)


@pytest.mark.parametrize(("n", "fraction", "expected"), [
    (10, 0.25, 2),  # round(2.5) is 2: Python rounds halves to even
    (10, 0.35, 4),  # round(3.5) is 4
    (7, 0.1, 1),
    (5, 0.05, 1),  # at least one validation row
    (100, 0.2, 20),
    (1000, 0.9, 900),
])
def test_validation_rows_are_disjoint_from_training_rows_and_cover_all(
        n: int, fraction: float, expected: int) -> None:
    split = prepare_split(make_dataset(n), options(fraction), seed=5)

    assert split.val is not None
    train_rows = split.train.columns["row"].long()
    val_rows = split.val.columns["row"].long()
    assert split.val.rows == expected
    assert split.train.rows == n - expected
    assert set(train_rows.tolist()).isdisjoint(val_rows.tolist())
    assert sorted(train_rows.tolist() + val_rows.tolist()) == list(range(n))
    # both keep the original order of the rows
    assert torch.equal(train_rows, train_rows.sort().values)
    assert torch.equal(val_rows, val_rows.sort().values)


def test_the_split_depends_on_the_seed() -> None:
    dataset = make_dataset(200)

    a = prepare_split(dataset, options(0.3), seed=1)
    b = prepare_split(dataset, options(0.3), seed=1)
    c = prepare_split(dataset, options(0.3), seed=2)

    assert a.val is not None
    assert b.val is not None
    assert c.val is not None
    assert torch.equal(a.val.columns["row"], b.val.columns["row"])
    assert not torch.equal(a.val.columns["row"], c.val.columns["row"])


def test_statistics_come_from_the_training_rows_only() -> None:
    dataset = make_dataset(400)

    split = prepare_split(dataset, options(0.25, standardize=True), seed=11)

    assert split.val is not None
    plain = prepare_split(dataset, options(0.25), seed=11)
    assert plain.val is not None
    raw_train, raw_val = plain.train.columns["u"], plain.val.columns["u"]
    train, val = split.train.columns["u"], split.val.columns["u"]
    assert abs(float(train.mean())) < 1e-5
    assert abs(float(train.std(unbiased=False)) - 1.0) < 1e-5
    mean, std = raw_train.mean(), raw_train.std(unbiased=False)
    assert torch.equal(val, (raw_val - mean) / std)
    # the statistics of all rows would give something else
    everything = dataset.columns["u"]
    assert not torch.equal(val, (raw_val - everything.mean()) / everything.std(unbiased=False))


def test_statistics_are_per_feature_for_columns_with_several_values() -> None:
    split = prepare_split(make_dataset(300), options(standardize=True), seed=0)

    pair = split.train.columns["pair"]
    image = split.train.columns["image"]
    assert pair.shape == (300, 2)
    assert image.shape == (300, 1, 2, 2)
    assert pair.mean(dim=0).abs().max() < 1e-5
    assert (pair.std(dim=0, unbiased=False) - 1).abs().max() < 1e-5
    assert image.mean(dim=0).abs().max() < 1e-5
    assert (image.std(dim=0, unbiased=False) - 1).abs().max() < 1e-5


def test_a_constant_column_is_only_centred() -> None:
    dataset = make_dataset(20)
    dataset.columns["constant"][:] = 7.25

    split = prepare_split(dataset, options(0.2, standardize=True), seed=0)

    assert split.val is not None
    assert torch.equal(split.train.columns["constant"], torch.zeros(16))
    assert torch.equal(split.val.columns["constant"], torch.zeros(4))
    assert torch.isfinite(split.train.features()).all()


TARGET_CASES = [(n, fraction, standardize, outputs, seed)
                for n, fraction in [(10, 0.25), (100, 0.2), (33, 0.5), (7, 0.0)]
                for standardize in (False, True)
                for outputs in (1, 3)
                for seed in (0, 2**40)]


@pytest.mark.parametrize(("n", "fraction", "standardize", "outputs", "seed"), TARGET_CASES)
def test_standardized_targets_match_the_plain_pytorch_steps(
        n: int, fraction: float, standardize: bool, outputs: int, seed: int) -> None:
    dataset = make_regression(n, seed=seed % 5, outputs=outputs)

    split = prepare_split(dataset, options(fraction, standardize, standardize_targets=True),
                          seed=seed)

    assert dataset.targets is not None
    train_x, train_y, val_x, val_y = plain_pytorch(
        dataset.columns, dataset.targets, val_fraction=fraction, standardize=standardize,
        seed=seed, standardize_targets=True)
    assert_identical(split.train, train_x, train_y)
    assert not torch.equal(train_y, dataset.targets[:train_y.shape[0]])  # it did something
    if fraction:
        assert split.val is not None
        assert val_x is not None
        assert val_y is not None
        assert_identical(split.val, val_x, val_y)
    else:
        assert split.val is None


def test_target_statistics_come_from_the_training_rows_per_target_column() -> None:
    dataset = make_regression(400, outputs=3)

    split = prepare_split(dataset, options(0.25, standardize_targets=True), seed=3)
    plain = prepare_split(dataset, options(0.25), seed=3)

    assert split.train.targets is not None
    assert split.val is not None
    assert split.val.targets is not None
    assert plain.val is not None
    assert plain.train.targets is not None
    assert plain.val.targets is not None
    train = split.train.targets
    assert train.shape == (300, 3)
    assert train[:, :2].mean(dim=0).abs().max() < 1e-5
    assert (train[:, :2].std(dim=0, unbiased=False) - 1).abs().max() < 1e-5
    assert torch.equal(train[:, 2], torch.zeros(300))  # a constant target is only centred
    mean = plain.train.targets.mean(dim=0)
    std = torch.where(plain.train.targets.std(dim=0, unbiased=False) > 0,
                      plain.train.targets.std(dim=0, unbiased=False), 1.0)
    assert torch.equal(split.val.targets, (plain.val.targets - mean) / std)
    # the inputs are left alone: standardize and standardize_targets are separate options
    assert torch.equal(split.train.columns["u"], plain.train.columns["u"])


@pytest.mark.parametrize("dataset", [
    make_dataset(20),                                                  # int64 class labels
    Dataset(columns={"u": torch.arange(4.0)}, targets=torch.arange(4.0),
            task="classification", classes=4),                         # labels as floats
    Dataset(columns={"u": torch.arange(4.0)}, targets=None),           # no targets at all
], ids=["int64-labels", "classification", "no-targets"])
def test_standardize_targets_is_refused_without_regression_targets(dataset: Dataset) -> None:
    with pytest.raises(SpecError) as caught:
        prepare_split(dataset, options(0.25, standardize_targets=True), seed=0)

    assert caught.value.loc == ("data", "standardize_targets")


def test_standardize_alone_leaves_the_targets_and_keeps_metadata() -> None:
    dataset = Dataset(columns={"x0": torch.linspace(0, 10, 30)},
                      targets=torch.linspace(100, 200, 30), task="regression")

    split = prepare_split(dataset, options(0.2, standardize=True), seed=4)

    assert split.val is not None
    assert split.train.targets is not None
    assert split.val.targets is not None
    all_targets = torch.cat([split.train.targets, split.val.targets]).sort().values
    assert torch.equal(all_targets, torch.linspace(100, 200, 30))
    assert split.train.task == split.val.task == "regression"
    images = prepare_split(make_dataset(10), options(0.2, standardize=True), seed=0)
    assert images.val is not None
    assert images.train.image_shape == images.val.image_shape == (1, 2, 2)
    assert images.train.classes == images.val.classes == 3
    assert images.train.targets is not None
    assert images.train.targets.dtype == torch.int64


def test_no_options_or_nothing_to_do_returns_the_dataset_unchanged() -> None:
    dataset = make_dataset(12)

    for opts in (None, options()):
        split = prepare_split(dataset, opts, seed=0)
        assert split == Split(train=dataset, val=None)
        assert split.train is dataset


@pytest.mark.parametrize(("n", "fraction"), [(2, 0.9), (1, 0.1), (3, 0.9), (0, 0.5)])
def test_a_split_leaving_no_training_rows_is_refused(n: int, fraction: float) -> None:
    dataset = Dataset(columns={"u": torch.arange(float(n))}, targets=None)

    with pytest.raises(SpecError) as caught:
        prepare_split(dataset, options(fraction), seed=0)

    assert caught.value.loc == ("data", "val_fraction")


def test_a_split_of_targets_only_data() -> None:
    dataset = Dataset(columns={}, targets=torch.arange(10.0))

    split = prepare_split(dataset, options(0.3, standardize=True), seed=0)

    assert split.val is not None
    assert split.train.rows == 7
    assert split.val.rows == 3
    assert split.train.columns == {}
