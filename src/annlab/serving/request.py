"""The JSON body that `mlflow models serve` takes for raw rows, built the way `annlab predict`
feeds the model, so a served model answers with the same numbers.

The logged model is MLflow's Keras flavour with a tensor signature, so the body uses MLflow's
`inputs` key: a list of rows for one-input models, and for two-input Wide & Deep a dict of the
`wide` and `deep` feature subsets (the Keras pyfunc passes a DataFrame to the model as one
array, so named columns cannot feed two inputs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from annlab.models.feeding import feed


def serving_request(meta: dict[str, Any], X: np.ndarray) -> dict[str, Any]:
    inputs = feed(meta, X)
    if isinstance(inputs, dict):
        return {"inputs": {k: np.asarray(v).tolist() for k, v in inputs.items()}}
    return {"inputs": np.asarray(inputs).tolist()}


def write_request(model_ref: str, data: str | Path, output: str | Path) -> str:
    """`annlab request`: the body for POST /invocations from a data file, checked like predict."""
    from annlab.io import atomic_file
    from annlab.serving.inputs import read_features
    from annlab.serving.source import load_model

    loaded = load_model(model_ref)
    features = read_features(data, loaded.meta)
    with atomic_file(output) as handle:
        json.dump(serving_request(loaded.meta, features.X), handle)
    return (
        f"request: {len(features.X)} rows of {data} for {loaded.source} -> {output}{features.note()} "
        f"(curl -H 'Content-Type: application/json' -d @{output} http://127.0.0.1:PORT/invocations)"
    )
