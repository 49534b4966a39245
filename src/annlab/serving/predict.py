"""Predictions on new raw rows, as a table: class names, probabilities and top-k for
classifiers, one value per output for regressors (main `predicted`, then e.g. `aux_output`).

The model holds its own scaling (a Normalization layer), so the raw rows go in unchanged and the
numbers equal the evaluate stage's on the same rows; the batch size matches evaluate's too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from annlab.errors import AnnlabError
from annlab.io import write_csv
from annlab.models.feeding import MAIN_OUTPUT, class_probabilities, predict_outputs

CLASSIFICATION = ("multiclass", "binary", "multilabel")


def _classification(
    output: np.ndarray, meta: dict[str, Any], top_k: int, prefix: str
) -> dict[str, np.ndarray]:
    task = meta["task"]
    proba = class_probabilities(output, task)
    names = meta.get("class_names") or [str(i) for i in range(proba.shape[1])]
    labels = np.asarray(names, dtype=object)
    order = np.argsort(-proba, axis=1, kind="stable")
    rows = np.arange(len(proba))
    columns: dict[str, np.ndarray] = {}
    if task == "multilabel":
        columns[f"{prefix}predicted"] = np.asarray([";".join(labels[p >= 0.5]) for p in proba], dtype=object)
    else:
        best = proba.argmax(axis=1)
        columns[f"{prefix}predicted"] = labels[best]
        columns[f"{prefix}probability"] = proba[rows, best]
    if prefix:  # auxiliary outputs: their best class only
        return columns
    for rank in range(min(top_k, proba.shape[1])):
        columns[f"top{rank + 1}"] = labels[order[:, rank]]
        columns[f"top{rank + 1}_probability"] = proba[rows, order[:, rank]]
    return columns


def _regression(output: np.ndarray, meta: dict[str, Any], name: str) -> dict[str, np.ndarray]:
    if output.shape[1] == 1:
        return {name: output[:, 0]}
    targets = meta.get("target_names") or []
    if len(targets) != output.shape[1]:
        targets = [str(i) for i in range(output.shape[1])]
    return {f"{name}_{t}": output[:, i] for i, t in enumerate(targets)}


def prediction_columns(
    outputs: dict[str, np.ndarray], meta: dict[str, Any], top_k: int = 3
) -> dict[str, np.ndarray]:
    """The predictions table: `predicted` (+ probability, top-k) from the main output first,
    then a column (or two) per auxiliary output, named after it."""
    if top_k < 1:
        raise AnnlabError(f"Expected `--top-k` >= 1. Received: --top-k={top_k}.")
    columns: dict[str, np.ndarray] = {}
    for name, output in outputs.items():
        main = name == MAIN_OUTPUT
        if meta["task"] in CLASSIFICATION:
            columns.update(_classification(output, meta, top_k, "" if main else f"{name}_"))
        else:
            columns.update(_regression(output, meta, "predicted" if main else name))
    return columns


def predict_rows(model, meta: dict[str, Any], X: np.ndarray, top_k: int = 3) -> dict[str, np.ndarray]:
    return prediction_columns(predict_outputs(model, meta, X), meta, top_k)


def predict_file(model_ref: str, data: str | Path, output: str | Path, top_k: int = 3) -> str:
    """`annlab predict`: load the model, read and check the data, write the predictions CSV."""
    from annlab.serving.inputs import read_features
    from annlab.serving.source import load_model

    if top_k < 1:
        raise AnnlabError(f"Expected `--top-k` >= 1. Received: --top-k={top_k}.")
    loaded = load_model(model_ref)
    features = read_features(data, loaded.meta)
    columns = predict_rows(loaded.model, loaded.meta, features.X, top_k)
    write_csv(output, columns)
    return (
        f"predict: {len(features.X)} rows of {data} with {loaded.source} "
        f"({loaded.meta.get('name', '?')}, {loaded.meta['task']}) -> {output}{features.note()}"
    )
