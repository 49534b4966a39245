"""Small data files in the formats the real loaders read (IDX, StatLib, sklearn's cache, CSV),
written by tests so no test needs the network or the real data sets."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

IDX_NAMES = {
    "X": "train-images-idx3-ubyte.gz",
    "y": "train-labels-idx1-ubyte.gz",
    "X_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}


def idx_bytes(array: np.ndarray) -> bytes:
    assert array.dtype == np.uint8
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_idx_set(folder: Path, n_train: int = 120, n_test: int = 40, seed: int = 0) -> Path:
    """Four gzipped IDX files of 28x28 uint8 images whose label shows in the pixels, so even a
    few epochs learn something."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for part, n in (("", n_train), ("_test", n_test)):
        y = (np.arange(n) % 10).astype(np.uint8)
        X = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(y):
            X[i, label * 2 : label * 2 + 3, :] = 250
        (folder / IDX_NAMES[f"X{part}"]).write_bytes(gzip.compress(idx_bytes(X)))
        (folder / IDX_NAMES[f"y{part}"]).write_bytes(gzip.compress(idx_bytes(y)))
    return folder


def statlib_rows(n: int = 400, seed: int = 0) -> np.ndarray:
    """Rows shaped like StatLib's cal_housing.data (9 columns), with a learnable target."""
    rng = np.random.default_rng(seed)
    households = rng.uniform(100, 1000, n)
    income = rng.uniform(0.5, 15, n)
    rows = np.column_stack(
        [
            rng.uniform(-124, -114, n),
            rng.uniform(32, 42, n),
            rng.integers(1, 52, n),
            households * rng.uniform(3, 7, n),
            households * rng.uniform(0.8, 1.3, n),
            households * rng.uniform(2, 4, n),
            households,
            income,
            np.clip(income * 40000 + rng.normal(0, 20000, n), 15000, 500001),
        ]
    )
    return rows


def write_statlib(path: Path, n: int = 400) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, statlib_rows(n), delimiter=",", fmt="%.6f", newline="\r\n")
    return path


def write_sklearn_california_cache(data_home: Path, n: int = 400) -> Path:
    """What `fetch_california_housing` stores after its download (joblib, made here)."""
    import joblib

    data_home.mkdir(parents=True, exist_ok=True)
    target = data_home / "cal_housing_py3.pkz"
    rows = statlib_rows(n)
    # sklearn keeps the StatLib columns reordered: value, income, age, rooms, bedrooms,
    # population, households, latitude, longitude
    cache = rows[:, [8, 7, 2, 3, 4, 5, 6, 1, 0]]
    joblib.dump(cache, target, compress=6)
    return target
