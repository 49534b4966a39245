"""MNIST and Fashion-MNIST: Keras' loaders, or a local folder of the four original IDX files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from annlab.data.dataset import Dataset, DatasetMeta
from annlab.errors import AnnlabError

FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
IDX_FILES = {
    "X": "train-images-idx3-ubyte",
    "y": "train-labels-idx1-ubyte",
    "X_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (gzipped or not), checking its header against its size."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as err:
        raise AnnlabError(f"IDX file '{path}' is corrupt or truncated ({err}): download it again.") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise AnnlabError(f"IDX file '{path}' has no valid IDX header: is it the right file?")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise AnnlabError(f"IDX file '{path}' is truncated in its header: download it again.")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise AnnlabError(
            f"IDX file '{path}' is truncated or corrupt: its header promises {expected} bytes of "
            f"data, the file holds {len(raw) - header}. Download it again."
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise AnnlabError(
        f"'{folder}' holds no '{stem}.gz': set `dataset.path` to a folder with the four IDX files "
        "(train-images, train-labels, t10k-images, t10k-labels)."
    )


def load_idx_folder(folder: Path) -> dict[str, np.ndarray]:
    if not folder.is_dir():
        raise AnnlabError(
            f"Data folder `dataset.path`='{folder}' does not exist: "
            "point it at the folder holding the IDX .gz files."
        )
    arrays = {key: read_idx(_find(folder, stem)) for key, stem in IDX_FILES.items()}
    for part in ("", "_test"):
        n_images, n_labels = len(arrays[f"X{part}"]), len(arrays[f"y{part}"])
        if n_images != n_labels:
            raise AnnlabError(
                f"IDX files in '{folder}' disagree: {n_images} images but "
                f"{n_labels} labels{' (test)' if part else ''}."
            )
    return arrays


def _load(name: str, path: str | None) -> dict[str, np.ndarray]:
    if path:
        return load_idx_folder(Path(path).expanduser())
    from annlab.quiet_tensorflow import quiet_tensorflow

    quiet_tensorflow()
    import keras  # downloads to, or reads from, $KERAS_HOME/datasets

    loader = keras.datasets.fashion_mnist if name == "fashion_mnist" else keras.datasets.mnist
    try:
        (X, y), (X_test, y_test) = loader.load_data()
    except Exception as err:  # network or cache failure inside Keras
        raise AnnlabError(
            f"Cannot load {name} through Keras ({type(err).__name__}: {err}): connect to the "
            "internet once, or set `dataset.path` to a folder holding the four IDX .gz files."
        ) from None
    return {"X": X, "y": y, "X_test": X_test, "y_test": y_test}


def load_image_set(name: str, path: str | None) -> Dataset:
    arrays = _load(name, path)
    classes = FASHION_CLASSES if name == "fashion_mnist" else [str(i) for i in range(10)]
    shape = list(arrays["X"].shape[1:])
    meta = DatasetMeta(
        name=name,
        task="multiclass",
        input_shape=shape,
        feature_names=[f"pixel_{i}" for i in range(int(np.prod(shape)))],
        class_names=classes,
        source=str(path) if path else f"keras.datasets.{name}",
        is_image=True,
    )
    return Dataset(  # images are uint8 already (IDX or Keras): not copied a second time (55 MB)
        arrays["X"].astype(np.uint8, copy=False),
        arrays["y"].astype(np.int64, copy=False),
        meta,
        arrays["X_test"].astype(np.uint8, copy=False),
        arrays["y_test"].astype(np.int64, copy=False),
    )
