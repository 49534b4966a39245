"""Pick the loader for `dataset.name`, then apply the options every source shares."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from annlab.config.schema import DatasetConfig
from annlab.data.dataset import Dataset
from annlab.errors import AnnlabError


def load_source(cfg: DatasetConfig) -> Dataset:
    """Load a data set as configured: subset of features, task override, row limit, checks."""
    dataset = _load_raw(cfg)
    if cfg.features and cfg.name != "tabular":  # the tabular loader picks its own columns
        dataset = _select_features(dataset, cfg.features)
    if cfg.task != "auto":
        dataset = _set_task(dataset, cfg.task)
    if cfg.limit:
        dataset.X, dataset.y = dataset.X[: cfg.limit], dataset.y[: cfg.limit]
        if dataset.X_test is not None and dataset.y_test is not None:
            dataset.X_test = dataset.X_test[: cfg.limit]
            dataset.y_test = dataset.y_test[: cfg.limit]
    check_dataset(dataset, cfg.name)
    return dataset


def source_identity(cfg: DatasetConfig) -> dict[str, Any]:
    """What the loaded data comes from, cheaply: a local file or folder by path, size and
    modification time (as DVC and make tell a changed file), else the library that ships or
    fetches it, and where that library keeps its downloads."""
    if cfg.path:
        path = Path(cfg.path).expanduser().resolve()
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        return {"path": str(path), "files": [_stat(p) for p in files]}
    if cfg.name in ("fashion_mnist", "mnist"):
        return {"library": _version("keras"), "home": os.environ.get("KERAS_HOME", "~/.keras")}
    return {"library": _version("scikit-learn"), "home": os.environ.get("SCIKIT_LEARN_DATA", "")}


def _stat(path: Path) -> list[Any]:
    try:
        info = path.stat()
    except OSError:
        return [path.name, None, None]  # missing: the loader raises the one-line error
    return [path.name, info.st_size, info.st_mtime_ns]


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return f"{distribution}=={version(distribution)}"


def _load_raw(cfg: DatasetConfig) -> Dataset:
    name = cfg.name
    if name in ("digits", "iris", "diabetes"):
        from annlab.data import embedded

        return getattr(embedded, f"load_{name}")()
    if name in ("fashion_mnist", "mnist"):
        from annlab.data.idx import load_image_set

        return load_image_set(name, cfg.path)
    if name == "california_housing":
        from annlab.data.california import load_california_housing

        return load_california_housing(cfg.path)
    if name == "tabular":
        from annlab.data.tabular import load_tabular

        return load_tabular(cfg.path or "", cfg.target or "", cfg.task, cfg.features)
    raise AnnlabError(f"Unknown data set `dataset.name`={name!r}.")


def _select_features(dataset: Dataset, features: list[str]) -> Dataset:
    """Keep named columns of a tabular data set (the book's iris Perceptron uses two)."""
    names = dataset.meta.feature_names
    missing = [f for f in features if f not in names]
    if dataset.meta.is_image or missing:
        raise AnnlabError(
            f"`dataset.features` {missing or features} not among the features of "
            f"{dataset.meta.name}: pick from {names[:12]}{' ...' if len(names) > 12 else ''}."
        )
    idx = [names.index(f) for f in features]
    dataset.X = dataset.X[:, idx]
    if dataset.X_test is not None:
        dataset.X_test = dataset.X_test[:, idx]
    dataset.meta.feature_names = list(features)
    dataset.meta.input_shape = [len(idx)]
    return dataset


def _set_task(dataset: Dataset, task: str) -> Dataset:
    """Allow e.g. iris as a binary problem ('setosa or not'), as in the Perceptron example."""
    meta = dataset.meta
    if task == meta.task:
        return dataset
    if task == "binary" and meta.task == "multiclass":
        positive = (meta.extra or {}).get("positive_class", 0)
        names = meta.class_names or []
        label = names[positive] if positive < len(names) else str(positive)
        dataset.y = (dataset.y == positive).astype(np.int64)
        if dataset.y_test is not None:
            dataset.y_test = (dataset.y_test == positive).astype(np.int64)
        meta.class_names = [f"not {label}", label]
        meta.task = "binary"
        return dataset
    if task == "regression" and meta.task != "regression":
        raise AnnlabError(
            f"`dataset.task`=regression does not fit {meta.name}, whose target is a class label: "
            f"use dataset.task=auto or {meta.task}."
        )
    meta.task = task
    return dataset


def check_dataset(dataset: Dataset, name: str) -> None:
    """Fail on data no network can learn from, naming what is wrong and where."""
    parts = [("", dataset.X, dataset.y)]
    if dataset.X_test is not None and dataset.y_test is not None:
        parts.append((" test", dataset.X_test, dataset.y_test))
    for part, X, y in parts:
        if len(X) == 0:
            raise AnnlabError(
                f"Data set {name!r}{part} has no rows: check `dataset.path` and `dataset.limit`."
            )
        if not np.issubdtype(X.dtype, np.number):
            raise AnnlabError(f"Data set {name!r}{part} has non-numeric features ({X.dtype}).")
        if np.issubdtype(X.dtype, np.floating) and not np.isfinite(X).all():
            bad = int((~np.isfinite(X)).any(axis=tuple(range(1, X.ndim))).sum())
            raise AnnlabError(
                f"Data set {name!r}{part} has NaN or infinite feature values in {bad} rows: "
                "clean or impute them before training."
            )
        if np.issubdtype(y.dtype, np.floating) and not np.isfinite(y).all():
            raise AnnlabError(f"Data set {name!r}{part} has NaN or infinite targets: drop those rows.")
        if dataset.meta.task in ("multiclass", "binary"):
            n_classes = len(dataset.meta.class_names or []) or 2
            if y.min() < 0 or y.max() >= n_classes:
                raise AnnlabError(
                    f"Data set {name!r}{part} has class labels outside 0..{n_classes - 1} "
                    f"(found {int(y.min())}..{int(y.max())}): labels must index the "
                    f"{n_classes} classes of the output layer."
                )
