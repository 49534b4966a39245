"""Data sets that ship inside scikit-learn: no network, so the default job always runs."""

from __future__ import annotations

import numpy as np

from annlab.data.dataset import Dataset, DatasetMeta


def load_digits() -> Dataset:
    """8x8 grey-level digits (values 0-16), kept as images so the MLP starts with Flatten."""
    from sklearn.datasets import load_digits as sk_load

    bunch = sk_load()
    X = bunch.images.astype(np.uint8)
    meta = DatasetMeta(
        name="digits",
        task="multiclass",
        input_shape=[8, 8],
        feature_names=[f"pixel_{r}_{c}" for r in range(8) for c in range(8)],
        class_names=[str(c) for c in bunch.target_names],
        source="sklearn.datasets.load_digits",
        is_image=True,
    )
    return Dataset(X, bunch.target.astype(np.int64), meta)


def load_iris() -> Dataset:
    from sklearn.datasets import load_iris as sk_load

    bunch = sk_load()
    meta = DatasetMeta(
        name="iris",
        task="multiclass",
        input_shape=[bunch.data.shape[1]],
        feature_names=list(bunch.feature_names),
        class_names=[str(c) for c in bunch.target_names],
        source="sklearn.datasets.load_iris",
    )
    return Dataset(bunch.data.astype(np.float32), bunch.target.astype(np.int64), meta)


def load_diabetes() -> Dataset:
    from sklearn.datasets import load_diabetes as sk_load

    bunch = sk_load()
    meta = DatasetMeta(
        name="diabetes",
        task="regression",
        input_shape=[bunch.data.shape[1]],
        feature_names=list(bunch.feature_names),
        target_names=["disease_progression"],
        source="sklearn.datasets.load_diabetes",
    )
    return Dataset(bunch.data.astype(np.float32), bunch.target.astype(np.float32), meta)
