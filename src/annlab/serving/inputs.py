"""Read new, raw data for a trained model and check it against what the model was trained on.

Tables (CSV, Parquet) are matched by column name to the training features (`meta.json`
`feature_names`), so column order does not matter and extra columns (an id, the target) are
set aside and reported. A table with no header, or whose column names are none of the training
names (pixel columns named another way), is taken by position when it has exactly one column
per feature: plain rows of 64 (8x8 digits) or 784 (28x28) numbers work as they are, and the
summary line says the columns were taken by position. Arrays (`.npy`, IDX files as in MNIST)
are taken in training feature order: `(n, *input_shape)`, `(n, n_features)` flattened, or one
single instance. Every problem ends in one `AnnlabError` line naming the file, what the model
takes, and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from annlab.errors import AnnlabError

TABLE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".parquet", ".pq")
SHOWN = 8


@dataclass
class Features:
    """Rows ready for the model, in training feature order and `(n, *input_shape)` shape."""

    X: np.ndarray
    ignored: list[str] = field(default_factory=list)  # table columns the model does not use
    by_position: str = ""  # why a table's columns were taken by position, if they were

    def note(self) -> str:
        """What the summary line adds: ignored columns, or columns taken by position."""
        if self.by_position:
            return f"; columns taken by position ({self.by_position})"
        return f"; ignored columns {self.ignored}" if self.ignored else ""


def expected_input(meta: dict[str, Any]) -> str:
    """What the model takes, in one sentence that every refusal ends with."""
    shape = tuple(int(s) for s in meta["input_shape"])
    names = [str(n) for n in meta["feature_names"]]
    size = len(names)
    if len(shape) > 1:
        dims = ", ".join(map(str, shape))
        return (
            f"The model takes images of shape ({dims}): an array (n, {dims}) or (n, {size}), or a "
            f"table of {size} pixel columns per row (named {names[0]} ... {names[-1]}, or no header)."
        )
    return (
        f"The model takes {size} features: a table with the columns {_names(names)} (any order, "
        f"extra columns ignored), a headerless CSV of {size} columns in that order, or an array (n, {size})."
    )


def _names(items: list[str]) -> str:
    shown = ", ".join(repr(str(i)) for i in items[:SHOWN])
    return f"[{shown}{f', ... ({len(items)} in all)' if len(items) > SHOWN else ''}]"


def kind_of(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(TABLE_SUFFIXES):
        return "table"
    if name.endswith(".npy"):
        return "npy"
    if name.endswith(".gz") or "ubyte" in name or "idx" in name:
        return "idx"
    raise AnnlabError(
        f"Cannot tell the format of '{path}': use a .csv or .parquet table with the feature "
        "columns, a .npy array, or an IDX file (e.g. t10k-images-idx3-ubyte.gz)."
    )


def read_features(path: str | Path, meta: dict[str, Any]) -> Features:
    """Load `path` as raw model inputs, checking columns, shape and values against `meta`."""
    path = Path(path).expanduser()
    try:
        if not path.is_file():
            raise AnnlabError(
                f"Data file '{path}' does not exist: give a CSV / Parquet table or a "
                ".npy / IDX array of new rows to predict."
            )
        kind = kind_of(path)
        if kind == "table":
            return _from_table(path, meta)
        array = _read_npy(path) if kind == "npy" else _read_idx(path)
        return Features(_shape_array(array, path, meta))
    except AnnlabError as err:
        raise AnnlabError(f"{err} {expected_input(meta)}") from None


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as err:
        if "pickle" in str(err):
            raise AnnlabError(
                f"'{path}' holds Python objects (a pickled array), which annlab does "
                "not load: save a numeric array (np.save of a float or int array)."
            ) from None
        raise AnnlabError(f"'{path}' is not a valid .npy file ({err}): save it with np.save.") from None
    except OSError as err:
        raise AnnlabError(f"Cannot read '{path}' as .npy ({err}): save it with np.save.") from None


def _read_idx(path: Path) -> np.ndarray:
    from annlab.data.idx import read_idx

    return read_idx(path)


def _shape_array(array: np.ndarray, path: Path, meta: dict[str, Any]) -> np.ndarray:
    """`(n, *shape)`, `(n, prod(shape))` or one instance of `shape` -> `(n, *shape)`."""
    shape = tuple(int(s) for s in meta["input_shape"])
    size = int(np.prod(shape))
    if array.dtype.kind not in "biuf":
        raise AnnlabError(
            f"'{path}' holds {array.dtype} values; the model takes numbers: save a numeric array."
        )
    if array.shape == shape:
        array = array[np.newaxis]
    elif (array.ndim == 2 and array.shape[1] == size and len(shape) > 1) or array.shape[1:] == (
        *shape,
        1,
    ):  # flattened rows, or one trailing channel
        array = array.reshape((len(array), *shape))
    if array.shape[1:] != shape:
        what = "images" if meta.get("is_image") else "rows"
        raise AnnlabError(
            f"'{path}' holds {what} of shape {array.shape[1:]} (array {array.shape}): give an "
            "array in the training feature order."
        )
    if len(array) == 0:
        raise AnnlabError(f"'{path}' holds no rows: nothing to predict.")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        first = int(np.argwhere(~np.isfinite(array.reshape(len(array), -1)))[0][0])
        raise AnnlabError(
            f"'{path}' holds NaN or infinite values (first at index {first}): fill or drop those rows."
        )
    return array


def _read_table(path: Path, header: int | None = 0):
    import pandas as pd

    try:
        if path.name.lower().endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        sep = "\t" if path.name.lower().endswith(".tsv") else ","
        return pd.read_csv(path, sep=sep, header=header)
    except pd.errors.EmptyDataError:
        raise AnnlabError(
            f"Data file '{path}' is empty: it needs at least one row (a header row of feature "
            "names is optional)."
        ) from None
    except Exception as err:  # pandas / pyarrow parse errors have many types
        first = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise AnnlabError(f"Cannot read '{path}' as a table ({first}): save it as CSV or Parquet.") from None


def _is_number(label: Any) -> bool:
    try:
        float(str(label))
    except ValueError:
        return False
    return True


def _from_table(path: Path, meta: dict[str, Any]) -> Features:
    """Columns by name when the training names are all there; else, with exactly one column per
    feature and no header (or none of the training names), by position."""
    import pandas as pd

    frame = _read_table(path)
    names = [str(n) for n in meta["feature_names"]]
    frame.columns = [str(c) for c in frame.columns]
    missing = [n for n in names if n not in frame.columns]
    by_position = ""
    # pandas' and NumPy's default header: 0, 1, ..., n-1 (`DataFrame(X).to_csv(index=False)`)
    default_header = list(frame.columns) == [str(i) for i in range(frame.shape[1])]
    if (
        missing
        and not default_header
        and all(_is_number(c) for c in frame.columns)
        and not path.name.lower().endswith((".parquet", ".pq"))
    ):
        # The "header" is a row of numbers: the file has no header. Read it again, all rows.
        frame = _read_table(path, header=None)
        by_position = "no header row"
    elif missing and not set(names) & set(frame.columns) and frame.shape[1] == len(names):
        by_position = "the column names are not the training names"
    if by_position:
        if frame.shape[1] != len(names):
            raise AnnlabError(
                f"'{path}' has no header row and {frame.shape[1]} columns per row; the model takes "
                f"{len(names)}: give rows of {len(names)} numbers in the training feature order."
            )
        frame.columns = names
    elif missing:
        raise AnnlabError(
            f"'{path}' lacks the feature columns {_names(missing)}, named as in training; the file "
            f"has {_names(list(frame.columns))}."
        )
    if frame.empty:
        raise AnnlabError(f"'{path}' has a header but no rows: nothing to predict.")
    ignored = [c for c in frame.columns if c not in names]
    X = np.empty((len(frame), len(names)), dtype=np.float32)
    for j, name in enumerate(names):
        column = frame[name]
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
        where = f"Column {name!r}" if not by_position else f"Column {j + 1}"
        text = column[np.isnan(values) & column.notna().to_numpy()]
        if len(text):
            raise AnnlabError(
                f"{where} of '{path}' holds non-numeric values (row {text.index[0] + 1}: "
                f"{str(text.iloc[0])[:40]!r}): features must be numbers; encode or fix them."
            )
        bad = ~np.isfinite(values)
        if bad.any():
            rows = np.flatnonzero(bad)
            raise AnnlabError(
                f"{where} of '{path}' has {len(rows)} missing or infinite values (first "
                f"in row {rows[0] + 1}): fill or drop those rows."
            )
        X[:, j] = values
    shape = tuple(int(s) for s in meta["input_shape"])
    return Features(X.reshape((len(X), *shape)), ignored, by_position)
