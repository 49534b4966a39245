"""The in-memory form every source returns, and its on-disk form (`arrays.npz` + `meta.json`)."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from annlab.errors import AnnlabError
from annlab.io import load_arrays, read_json, save_arrays, write_json

ARRAYS_FILE = "arrays.npz"
META_FILE = "meta.json"


@dataclass
class DatasetMeta:
    """What downstream stages need to know without loading the arrays."""

    name: str
    task: str  # multiclass | binary | multilabel | regression
    input_shape: list[int]
    feature_names: list[str]
    class_names: list[str] | None = None
    target_names: list[str] = field(default_factory=lambda: ["target"])
    source: str = ""
    is_image: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_outputs(self) -> int:
        if self.task == "multiclass":
            return len(self.class_names or [])
        if self.task == "binary":
            return 1
        return len(self.target_names)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetMeta:
        return cls(**data)


@dataclass
class Dataset:
    """Features and targets; `X_test` / `y_test` when the source ships its own test set."""

    X: np.ndarray
    y: np.ndarray
    meta: DatasetMeta
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"X": self.X, "y": self.y}
        if self.X_test is not None and self.y_test is not None:
            out.update(X_test=self.X_test, y_test=self.y_test)
        return out


def digest(arrays: dict[str, np.ndarray]) -> str:
    """A content hash of arrays (names, dtypes, shapes, bytes): the data lineage MLflow records."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        arr = np.ascontiguousarray(arrays[key])
        h.update(f"{key}:{arr.dtype.str}:{arr.shape}".encode())
        h.update(arr)  # the array's own buffer (C-contiguous): the same bytes, not copied
    return h.hexdigest()


def save_dataset(folder: Path, dataset: Dataset) -> None:
    save_arrays(folder / ARRAYS_FILE, **dataset.arrays())
    write_json(folder / META_FILE, dataset.meta.to_dict())


def load_dataset_folder(folder: str | Path) -> Dataset:
    folder = Path(folder)
    for name in (ARRAYS_FILE, META_FILE):
        if not (folder / name).is_file():
            raise AnnlabError(f"Prepared data '{folder / name}' not found: run `dvc repro prepare` first.")
    arrays = load_arrays(folder / ARRAYS_FILE)
    meta = DatasetMeta.from_dict(read_json(folder / META_FILE))
    return Dataset(arrays["X"], arrays["y"], meta, arrays.get("X_test"), arrays.get("y_test"))
