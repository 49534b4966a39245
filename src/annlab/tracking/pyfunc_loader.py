"""The python_function loader of every Keras model annlab logs: safe mode, silent predictions.

MLflow's Keras flavour predicts with Keras' default `verbose="auto"`, so `mlflow models serve`
wrote a progress bar (thousands of characters) to its log for every request, and it rebuilds
annlab's own classes (the subclassed `WideAndDeepModel`) only if something imported them.
annlab's logged models keep the Keras flavour as it is (`mlflow.keras.load_model` works as
usual) and name this module as their pyfunc `loader_module`, MLflow's documented contract for
custom loaders (`_load_pyfunc(path)` returning an object with `predict(data, params=None)`):
it loads the `.keras` file in Keras safe mode, with annlab's classes registered, and predicts
with `verbose=0`. Serving therefore needs annlab importable, e.g.
`mlflow models serve --env-manager local`.
"""

from __future__ import annotations

import os
from typing import Any

KERAS_FLAVOR = "keras"
MLMODEL_FILE = "MLmodel"


class SilentKerasModel:
    """A Keras model as a pyfunc implementation: the inputs and outputs of MLflow's Keras
    flavour (a DataFrame in gives a DataFrame out; arrays, lists and dicts give NumPy), no
    progress bar."""

    def __init__(self, model) -> None:
        self.model = model

    def get_raw_model(self):
        return self.model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:  # noqa: ARG002
        import keras
        import numpy as np
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return pd.DataFrame(self.model.predict(data.to_numpy(), verbose=0), index=data.index)
        if not isinstance(data, (np.ndarray, list, tuple, dict)):
            raise TypeError(
                f"Model input must be a DataFrame, an array, a list or a dict of arrays; got {type(data)}."
            )
        return keras.ops.convert_to_numpy(self.model.predict(data, verbose=0))


def keras_file(path: str) -> str:
    """The `.keras` file inside a logged model folder, where the Keras flavour put it."""
    from mlflow.models import Model

    flavor = Model.load(os.path.join(path, MLMODEL_FILE)).flavors[KERAS_FLAVOR]
    if flavor.get("save_exported_model"):
        raise ValueError(f"'{path}' holds an exported SavedModel, not a .keras file: load it with TF.")
    model_path = os.path.join(path, flavor.get("data", "data"))
    if os.path.isdir(model_path):
        model_path = os.path.join(model_path, "model")
    return f"{model_path}.keras"


def _load_pyfunc(path: str) -> SilentKerasModel:
    """Called by `mlflow.pyfunc.load_model` with the pyfunc flavour's `data`: the `.keras`
    file itself (models logged from the saved file), or the model folder (models logged with
    `mlflow.keras`, whose pyfunc flavour names no data)."""
    from annlab.models.loading import load_keras_model

    file = path if path.endswith(".keras") and os.path.isfile(path) else keras_file(path)
    return SilentKerasModel(load_keras_model(file))
