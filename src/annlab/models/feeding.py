"""How raw feature rows feed a model and how its outputs come back: the one place that
training, evaluation, `annlab predict`, serving requests and export share.

A model's input mapping is what `meta.json` records beside it (`two_inputs`, `wide_features`,
`deep_features`): one array for most models, a dict of feature subsets for two-input Wide & Deep.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

MAIN_OUTPUT = "output"
BATCH_SIZE = 1024  # evaluation and prediction use the same batches, so the same float results


def feed(mapping: Mapping[str, Any], X: np.ndarray) -> Any:
    """Raw rows -> the model's inputs, by the model's input mapping."""
    if mapping.get("two_inputs"):
        return {"wide": X[:, mapping["wide_features"]], "deep": X[:, mapping["deep_features"]]}
    return X


def predict_outputs(model, mapping: Mapping[str, Any], X: np.ndarray) -> dict[str, np.ndarray]:
    """Every output by name (`output` first, then e.g. `aux_output`), each as a 2-D array."""
    raw = model.predict(feed(mapping, X), batch_size=BATCH_SIZE, verbose=0)
    if isinstance(raw, dict):
        outputs = dict(raw)
    elif isinstance(raw, list | tuple):
        outputs = {MAIN_OUTPUT: raw[0], **{f"output_{i}": v for i, v in enumerate(raw[1:], 1)}}
    else:
        outputs = {MAIN_OUTPUT: raw}
    ordered = {MAIN_OUTPUT: outputs.pop(MAIN_OUTPUT), **outputs}
    return {k: np.asarray(v).reshape(len(X), -1) for k, v in ordered.items()}


def class_probabilities(output: np.ndarray, task: str) -> np.ndarray:
    """One column per class: a binary model's single sigmoid becomes (1 - p, p)."""
    if task == "binary":
        p = output.reshape(-1)
        return np.column_stack([1 - p, p])
    return output
