"""Split a data set into train / valid / test and fit the input scaler on train only.

The scaler is stored as JSON (mean and variance, or a divisor) and applied by a Keras
`Normalization` layer inside the model, so the saved model takes raw features: evaluation,
`annlab predict` and MLflow serving all see the same preprocessing, and images stay uint8 on
disk and in memory until a batch is formed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from annlab.config.schema import SplitConfig
from annlab.data.dataset import Dataset, DatasetMeta, digest
from annlab.errors import AnnlabError
from annlab.io import load_arrays, read_json, save_arrays, write_json

SPLITS = ("train", "valid", "test")
SCALER_FILE = "scaler.json"
META_FILE = "meta.json"


@dataclass
class Splits:
    train: tuple[np.ndarray, np.ndarray]
    valid: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    scaler: dict[str, Any]
    meta: DatasetMeta

    def sizes(self) -> dict[str, int]:
        return {name: len(getattr(self, name)[0]) for name in SPLITS}

    def digest(self) -> str:
        return digest({f"{n}_{k}": a for n in SPLITS for k, a in zip("Xy", getattr(self, n), strict=True)})

    def lineage_digest(self) -> str:
        """The digest the split stage recorded in meta.json beside these arrays, else computed
        (hashing Fashion-MNIST's splits takes ~0.16 s, on a training's critical path)."""
        return str(self.meta.extra.get("digest") or self.digest())


def split_dataset(dataset: Dataset, cfg: SplitConfig, seed: int) -> Splits:
    if cfg.strategy == "head":
        train, valid, test = _split_head(dataset, int(cfg.valid_size))
    else:
        train, valid, test = _split_random(dataset, cfg, seed)
    for name, (X, _) in zip(SPLITS, (train, valid, test), strict=True):
        if len(X) == 0:
            raise AnnlabError(
                f"The {name} split of {dataset.meta.name!r} is empty ({len(dataset.X)} rows): "
                "lower `split.test_size` / `split.valid_size` or use more data."
            )
    scaler = fit_scaler(train[0], cfg)
    return Splits(train, valid, test, scaler, dataset.meta)


def _split_head(dataset: Dataset, n_valid: int):
    """The book's Fashion-MNIST split: first `n_valid` training rows validate."""
    if dataset.X_test is None or dataset.y_test is None:
        raise AnnlabError(
            f"split=head needs a data set with its own test set; {dataset.meta.name!r} has none: "
            "use split=random."
        )
    if n_valid >= len(dataset.X):
        raise AnnlabError(
            f"Expected `split.valid_size` < {len(dataset.X)} (the training rows) so training is "
            f"not empty. Received: split.valid_size={n_valid}."
        )
    X, y = dataset.X, dataset.y
    return (X[n_valid:], y[n_valid:]), (X[:n_valid], y[:n_valid]), (dataset.X_test, dataset.y_test)


def _split_random(dataset: Dataset, cfg: SplitConfig, seed: int):
    """Two `train_test_split`s (test first, then valid from the rest), stratified if asked."""
    from sklearn.model_selection import train_test_split

    X, y = dataset.X, dataset.y
    classify = dataset.meta.task in ("multiclass", "binary")
    n = len(X)
    n_test = int(np.ceil(n * cfg.test_size))  # type: ignore[operator]
    n_valid = int(np.ceil(n * cfg.valid_size))
    if n - n_test - n_valid < 1 or n_test < 1 or n_valid < 1:
        raise AnnlabError(
            f"{n} rows of {dataset.meta.name!r} leave an empty split with split.test_size="
            f"{cfg.test_size} and split.valid_size={cfg.valid_size}: use more data or other sizes."
        )
    stratify = classify and cfg.stratify and _can_stratify(y, n_test, n_valid)
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=n_test, random_state=seed, stratify=y if stratify else None
    )
    X_train, X_valid, y_train, y_valid = train_test_split(
        X_rest, y_rest, test_size=n_valid, random_state=seed, stratify=y_rest if stratify else None
    )
    return (X_train, y_train), (X_valid, y_valid), (X_test, y_test)


def _can_stratify(y: np.ndarray, n_test: int, n_valid: int) -> bool:
    counts = np.bincount(y.astype(np.int64))
    n_classes = int((counts > 0).sum())
    return counts[counts > 0].min() >= 3 and min(n_test, n_valid) >= n_classes


def fit_scaler(X_train: np.ndarray, cfg: SplitConfig) -> dict[str, Any]:
    """Statistics of the training split only (never valid or test: no leakage)."""
    if cfg.scaling == "none":
        return {"kind": "none"}
    if cfg.scaling == "rescale":
        return {"kind": "rescale", "divisor": float(cfg.rescale_divisor)}
    data = X_train.astype(np.float64)
    mean = data.mean(axis=0)
    variance = data.var(axis=0)
    variance[variance == 0] = 1.0  # constant features pass through centred, like StandardScaler
    return {"kind": "standard", "mean": mean.tolist(), "variance": variance.tolist()}


def save_splits(folder: Path, splits: Splits) -> None:
    for name in SPLITS:
        X, y = getattr(splits, name)
        save_arrays(folder / f"{name}.npz", X=X, y=y)
    write_json(folder / SCALER_FILE, splits.scaler)
    meta = splits.meta.to_dict()
    meta["extra"] = {**meta.get("extra", {}), "sizes": splits.sizes(), "digest": splits.digest()}
    write_json(folder / META_FILE, meta)


def load_splits(folder: str | Path) -> Splits:
    folder = Path(folder)
    needed = [f"{n}.npz" for n in SPLITS] + [SCALER_FILE, META_FILE]
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise AnnlabError(f"Processed data {missing} missing in '{folder}': run `dvc repro split`.")
    parts = {}
    for name in SPLITS:
        arrays = load_arrays(folder / f"{name}.npz")
        parts[name] = (arrays["X"], arrays["y"])
    meta = DatasetMeta.from_dict(read_json(folder / META_FILE))
    return Splits(parts["train"], parts["valid"], parts["test"], read_json(folder / SCALER_FILE), meta)
