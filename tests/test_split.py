"""Splits are the right size, disjoint, and the scaler sees the training split only."""

from __future__ import annotations

import numpy as np
import pytest

from annlab.config.schema import SplitConfig
from annlab.data.dataset import Dataset, DatasetMeta
from annlab.data.embedded import load_digits
from annlab.data.split import fit_scaler, load_splits, save_splits, split_dataset
from annlab.errors import AnnlabError


def _rows(X: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in X.reshape(len(X), -1)}


def test_random_split_sizes_and_no_overlap():
    dataset = load_digits()
    # digits has a few duplicate images; compare row indices through a tagged copy instead
    tagged = Dataset(
        np.arange(len(dataset.X)).reshape(-1, 1).astype(np.float32),
        dataset.y,
        DatasetMeta("digits", "multiclass", [1], ["id"], dataset.meta.class_names),
    )
    splits = split_dataset(tagged, SplitConfig(test_size=0.2, valid_size=0.2), seed=0)
    n = len(dataset.X)
    sizes = splits.sizes()
    assert sizes["test"] == int(np.ceil(0.2 * n)) and sizes["valid"] == int(np.ceil(0.2 * n))
    assert sum(sizes.values()) == n
    ids = [set(getattr(splits, s)[0].ravel().tolist()) for s in ("train", "valid", "test")]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])


def test_stratified_split_keeps_class_balance():
    dataset = load_digits()
    splits = split_dataset(dataset, SplitConfig(), seed=1)
    train_share = np.bincount(splits.train[1]) / len(splits.train[1])
    test_share = np.bincount(splits.test[1]) / len(splits.test[1])
    assert np.abs(train_share - test_share).max() < 0.02


def test_scaler_is_fitted_on_train_only():
    dataset = load_digits()
    splits = split_dataset(dataset, SplitConfig(scaling="standard"), seed=0)
    train = splits.train[0].reshape(len(splits.train[0]), -1).astype(np.float64)
    everything = dataset.X.reshape(len(dataset.X), -1).astype(np.float64)
    mean = np.asarray(splits.scaler["mean"]).reshape(-1)
    np.testing.assert_allclose(mean, train.mean(axis=0))
    assert not np.allclose(mean, everything.mean(axis=0))


def test_rescale_and_none_scalers():
    X = np.ones((4, 2), dtype=np.uint8)
    assert fit_scaler(X, SplitConfig(scaling="rescale", rescale_divisor=255.0)) == {
        "kind": "rescale",
        "divisor": 255.0,
    }
    assert fit_scaler(X, SplitConfig(scaling="none")) == {"kind": "none"}


def test_head_split_uses_first_rows_as_validation():
    X = np.arange(100, dtype=np.float32).reshape(50, 2)
    y = np.arange(50) % 3
    meta = DatasetMeta("toy", "multiclass", [2], ["a", "b"], ["0", "1", "2"])
    dataset = Dataset(X, y, meta, X[:10] + 1000, y[:10])
    splits = split_dataset(dataset, SplitConfig(strategy="head", valid_size=5, test_size=None), seed=0)
    np.testing.assert_array_equal(splits.valid[0], X[:5])
    np.testing.assert_array_equal(splits.train[0], X[5:])
    np.testing.assert_array_equal(splits.test[0], X[:10] + 1000)


def test_too_small_data_set_is_refused():
    meta = DatasetMeta("toy", "regression", [1], ["a"])
    dataset = Dataset(np.ones((2, 1), np.float32), np.ones(2, np.float32), meta)
    with pytest.raises(AnnlabError, match="empty split"):
        split_dataset(dataset, SplitConfig(test_size=0.4, valid_size=0.4), seed=0)


def test_splits_round_trip_through_disk(tmp_path):
    splits = split_dataset(load_digits(), SplitConfig(), seed=0)
    save_splits(tmp_path, splits)
    loaded = load_splits(tmp_path)
    np.testing.assert_array_equal(loaded.test[0], splits.test[0])
    assert loaded.scaler == splits.scaler
    assert loaded.meta.extra["sizes"] == splits.sizes()
    assert not list(tmp_path.glob(".*tmp*")), "no temporary files may be left behind"


def test_the_lineage_digest_is_the_one_split_recorded_and_computed_only_without_it(tmp_path):
    """A training tags its run with the data's digest: the one the split stage wrote to
    meta.json (equal to hashing the loaded arrays), read rather than recomputed; splits that
    carry none (made in memory) are hashed."""
    splits = split_dataset(load_digits(), SplitConfig(), seed=0)
    assert "digest" not in splits.meta.extra
    assert splits.lineage_digest() == splits.digest()
    save_splits(tmp_path, splits)
    loaded = load_splits(tmp_path)
    assert loaded.lineage_digest() == loaded.digest() == splits.digest()
    loaded.meta.extra["digest"] = "recorded"  # what it reads: the record, not the arrays' hash
    assert loaded.lineage_digest() == "recorded"
