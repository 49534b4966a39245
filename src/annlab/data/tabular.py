"""A user's own CSV or Parquet file with a named target column."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from annlab.data.dataset import Dataset, DatasetMeta
from annlab.errors import AnnlabError

MAX_CLASSES_FOR_INTEGER_TARGET = 20


def read_table(path: Path):
    import pandas as pd

    if not path.is_file():
        raise AnnlabError(
            f"Data file `dataset.path`='{path}' does not exist: point it at a CSV or Parquet file."
        )
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise AnnlabError(f"Data file '{path}' is empty: it needs a header and rows.") from None
    except Exception as err:  # pandas/pyarrow parse errors have many types
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise AnnlabError(f"Cannot read '{path}' as {path.suffix or 'CSV'} ({first}).") from None


def infer_task(target) -> str:
    import pandas as pd

    if not pd.api.types.is_numeric_dtype(target) or pd.api.types.is_bool_dtype(target):
        return "binary" if target.nunique() == 2 else "multiclass"
    values = target.dropna().to_numpy()
    is_integer = np.all(np.equal(np.mod(values, 1), 0))
    if is_integer and target.nunique() <= MAX_CLASSES_FOR_INTEGER_TARGET:
        return "binary" if target.nunique() == 2 else "multiclass"
    return "regression"


def load_tabular(path: str, target: str, task: str = "auto", features: list[str] | None = None) -> Dataset:
    """Read the file; `features` (if given) picks the feature columns, else all but target."""
    import pandas as pd

    file = Path(path).expanduser()
    frame = read_table(file)
    if frame.empty:
        raise AnnlabError(f"Data file '{file}' has no rows: add data or pick another file.")
    if target not in frame.columns:
        raise AnnlabError(
            f"`dataset.target`='{target}' is not a column of '{file}'. "
            f"Columns: {', '.join(map(str, frame.columns))}."
        )
    y_col = frame.pop(target)
    if features:
        missing = [f for f in features if f not in frame.columns]
        if missing:
            raise AnnlabError(
                f"`dataset.features` {missing} are not columns of '{file}'. "
                f"Columns: {', '.join(map(str, frame.columns))}."
            )
        frame = frame[list(features)]
    non_numeric = [str(c) for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise AnnlabError(
            f"Feature columns {non_numeric} of '{file}' are not numeric: encode them as numbers "
            "or drop them (the tabular loader takes numeric features only)."
        )
    task = infer_task(y_col) if task == "auto" else task
    class_names = None
    if task in ("multiclass", "binary"):
        classes = sorted(y_col.dropna().unique().tolist(), key=str)
        index = {value: i for i, value in enumerate(classes)}
        y = y_col.map(index).to_numpy(dtype=np.int64)
        class_names = [str(c) for c in classes]
    else:
        if not pd.api.types.is_numeric_dtype(y_col):
            raise AnnlabError(
                f"Target column '{target}' of '{file}' is not numeric, so it cannot "
                "be a regression target: set `dataset.task=multiclass`."
            )
        y = y_col.to_numpy(dtype=np.float32)
    meta = DatasetMeta(
        name="tabular",
        task=task,
        input_shape=[frame.shape[1]],
        feature_names=[str(c) for c in frame.columns],
        class_names=class_names,
        target_names=[target],
        source=str(file),
    )
    return Dataset(frame.to_numpy(dtype=np.float32), y, meta)
