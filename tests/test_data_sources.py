"""The real loaders (Keras' and scikit-learn's fetchers, IDX, StatLib, CSV / Parquet) on small
files the tests write; no network."""

from __future__ import annotations

import gzip
import subprocess
import sys
import tarfile

import numpy as np
import pandas as pd
import pytest

from annlab.config.schema import DatasetConfig
from annlab.data.california import FEATURES
from annlab.data.idx import FASHION_CLASSES, read_idx
from annlab.data.sources import load_source
from annlab.errors import AnnlabError
from conftest import tool_env
from datafiles import (
    idx_bytes,
    statlib_rows,
    write_idx_set,
    write_sklearn_california_cache,
    write_statlib,
)


def test_idx_folder_loads_images_labels_and_class_names(tmp_path):
    write_idx_set(tmp_path, n_train=30, n_test=10)
    data = load_source(DatasetConfig(name="fashion_mnist", path=str(tmp_path)))
    assert data.X.shape == (30, 28, 28) and data.X.dtype == np.uint8
    assert data.X_test.shape == (10, 28, 28) and data.y_test.tolist() == list(range(10))
    assert data.meta.class_names == FASHION_CLASSES and data.meta.is_image


def test_keras_loader_reads_its_cache_under_keras_home(tmp_path):
    """keras.datasets.fashion_mnist.load_data() finds files in $KERAS_HOME and downloads
    nothing; KERAS_HOME is read when keras is imported, hence a fresh process."""
    write_idx_set(tmp_path / "keras" / "datasets" / "fashion-mnist", n_train=20, n_test=10)
    code = (
        "from annlab.config.schema import DatasetConfig;"
        "from annlab.data.sources import load_source;"
        "d = load_source(DatasetConfig(name='fashion_mnist'));"
        "print(d.X.shape, d.X_test.shape, d.meta.source)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=tool_env({"KERAS_HOME": str(tmp_path / "keras")}),
        check=True,
    )
    assert "(20, 28, 28) (10, 28, 28) keras.datasets.fashion_mnist" in out.stdout


@pytest.mark.parametrize("damage", ["truncate", "header", "garbage"])
def test_corrupt_idx_files_are_refused(tmp_path, damage):
    write_idx_set(tmp_path, n_train=20, n_test=10)
    target = tmp_path / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(target.read_bytes())
    if damage == "truncate":
        target.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    elif damage == "header":
        target.write_bytes(gzip.compress(b"\x01\x02" + raw[2:]))
    else:
        target.write_bytes(b"not gzip at all")
    with pytest.raises(AnnlabError, match="train-images-idx3-ubyte.gz"):
        load_source(DatasetConfig(name="fashion_mnist", path=str(tmp_path)))


def test_read_idx_round_trip(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.idx").write_bytes(idx_bytes(array))
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), array)


def test_statlib_file_gives_scikit_learns_features(tmp_path):
    path = write_statlib(tmp_path / "cal_housing.data", n=50)
    data = load_source(DatasetConfig(name="california_housing", path=str(path)))
    raw = statlib_rows(50)
    assert data.meta.feature_names == FEATURES
    np.testing.assert_allclose(data.X[:, 0], raw[:, 7], rtol=1e-5)  # MedInc
    np.testing.assert_allclose(data.X[:, 2], raw[:, 3] / raw[:, 6], rtol=1e-4)  # AveRooms
    np.testing.assert_allclose(data.y, raw[:, 8] / 100000, rtol=1e-5)


def test_statlib_archive_and_scikit_learn_fetcher_agree(tmp_path, monkeypatch):
    """The same rows through StatLib's .tgz and through fetch_california_housing's cache."""
    path = write_statlib(tmp_path / "CaliforniaHousing" / "cal_housing.data", n=60)
    with tarfile.open(tmp_path / "cal_housing.tgz", "w:gz") as archive:
        archive.add(path, arcname="CaliforniaHousing/cal_housing.data")
    from_tgz = load_source(DatasetConfig(name="california_housing", path=str(tmp_path / "cal_housing.tgz")))
    write_sklearn_california_cache(tmp_path / "sklearn", n=60)
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "sklearn"))
    fetched = load_source(DatasetConfig(name="california_housing"))
    np.testing.assert_allclose(fetched.X, from_tgz.X, rtol=1e-5)
    np.testing.assert_allclose(fetched.y, from_tgz.y, rtol=1e-5)


def test_tabular_csv_and_parquet_infer_the_task(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=40),
            "b": rng.normal(size=40),
            "label": ["cat", "dog"] * 20,
            "price": rng.uniform(1, 9, 40),
        }
    )
    frame.to_csv(tmp_path / "pets.csv", index=False)
    frame.to_parquet(tmp_path / "pets.parquet")
    cls = load_source(
        DatasetConfig(name="tabular", path=str(tmp_path / "pets.csv"), target="label", features=["a", "b"])
    )
    assert cls.meta.task == "binary" and cls.meta.class_names == ["cat", "dog"]
    assert cls.X.shape == (40, 2)
    reg = load_source(
        DatasetConfig(
            name="tabular", path=str(tmp_path / "pets.parquet"), target="price", features=["a", "b"]
        )
    )
    assert reg.meta.task == "regression" and reg.y.dtype == np.float32


@pytest.mark.parametrize(
    ("frame", "target", "message"),
    [
        (pd.DataFrame({"a": [1.0, 2.0], "y": [0, 1]}), "label", "not a column"),
        (pd.DataFrame({"a": ["x", "y"], "y": [0, 1]}), "y", "not numeric"),
        (pd.DataFrame({"a": [1.0, np.nan, 3.0], "y": [0, 1, 0]}), "y", "NaN or infinite"),
        (pd.DataFrame({"a": [1.0, np.inf, 3.0], "y": [0, 1, 0]}), "y", "NaN or infinite"),
    ],
)
def test_bad_tabular_files_are_refused(tmp_path, frame, target, message):
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(AnnlabError, match=message):
        load_source(DatasetConfig(name="tabular", path=str(tmp_path / "bad.csv"), target=target))


def test_empty_and_missing_files_are_refused(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(AnnlabError, match="empty"):
        load_source(DatasetConfig(name="tabular", path=str(tmp_path / "empty.csv"), target="y"))
    with pytest.raises(AnnlabError, match="does not exist"):
        load_source(DatasetConfig(name="tabular", path=str(tmp_path / "nope.csv"), target="y"))
    with pytest.raises(AnnlabError, match="does not exist"):
        load_source(DatasetConfig(name="fashion_mnist", path=str(tmp_path / "nowhere")))


def test_binary_task_and_feature_subset_on_iris():
    data = load_source(
        DatasetConfig(name="iris", task="binary", features=["petal length (cm)", "petal width (cm)"])
    )
    assert data.X.shape == (150, 2) and set(data.y.tolist()) == {0, 1}
    assert int(data.y.sum()) == 50 and data.meta.class_names == ["not setosa", "setosa"]
