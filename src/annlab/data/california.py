"""California housing: scikit-learn's fetcher, or a local StatLib `cal_housing.data` / `.tgz`.

The local file gives exactly scikit-learn's 8 features and target (same formulas as
`sklearn.datasets.fetch_california_housing`), so results compare across both routes.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np

from annlab.data.dataset import Dataset, DatasetMeta
from annlab.errors import AnnlabError

FEATURES = ["MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude", "Longitude"]
STATLIB_COLUMNS = 9


def statlib_to_features(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """StatLib columns -> scikit-learn's features and target (house value in $100,000)."""
    (longitude, latitude, age, rooms, bedrooms, population, households, income, value) = raw.T
    X = np.column_stack(
        [
            income,
            age,
            rooms / households,
            bedrooms / households,
            population,
            population / households,
            latitude,
            longitude,
        ]
    )
    return X, value / 100000.0


def read_statlib(path: Path) -> np.ndarray:
    if not path.exists():
        raise AnnlabError(
            f"Data file `dataset.path`='{path}' does not exist: point it at "
            "cal_housing.data or cal_housing.tgz from StatLib."
        )
    if path.suffix in (".tgz", ".gz") or path.name.endswith(".tar.gz"):
        try:
            with tarfile.open(path) as archive:
                member = next((m for m in archive.getmembers() if m.name.endswith("cal_housing.data")), None)
                if member is None:
                    raise AnnlabError(f"'{path}' holds no cal_housing.data: use StatLib's archive.")
                text = archive.extractfile(member).read().decode()  # type: ignore[union-attr]
        except (tarfile.TarError, OSError, EOFError) as err:
            raise AnnlabError(f"Archive '{path}' is corrupt ({err}): download it again.") from None
    else:
        text = path.read_text()
    try:
        raw = np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2)
    except ValueError as err:
        raise AnnlabError(f"'{path}' is not a StatLib California housing file ({err}).") from None
    if raw.size == 0:
        raise AnnlabError(f"Data file '{path}' is empty: download cal_housing.data again.")
    if raw.shape[1] != STATLIB_COLUMNS:
        raise AnnlabError(
            f"'{path}' has {raw.shape[1]} columns, expected {STATLIB_COLUMNS} (StatLib's cal_housing.data)."
        )
    return raw


def load_california_housing(path: str | None) -> Dataset:
    if path:
        X, y = statlib_to_features(read_statlib(Path(path).expanduser()))
        source = str(path)
    else:
        from sklearn.datasets import fetch_california_housing  # downloads or reads the cache

        try:
            bunch = fetch_california_housing()
        except OSError as err:
            raise AnnlabError(
                f"Cannot fetch California housing ({err}): connect once, set SCIKIT_LEARN_DATA to "
                "a cache, or set `dataset.path` to a local cal_housing.data / cal_housing.tgz."
            ) from None
        X, y = bunch.data, bunch.target
        source = "sklearn.datasets.fetch_california_housing"
    meta = DatasetMeta(
        name="california_housing",
        task="regression",
        input_shape=[len(FEATURES)],
        feature_names=list(FEATURES),
        target_names=["MedHouseVal"],
        source=source,
    )
    return Dataset(X.astype(np.float32), y.astype(np.float32), meta)
