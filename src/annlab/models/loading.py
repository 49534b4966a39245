"""Load saved Keras models in safe mode: a `.keras` file is data, not code to run."""

from __future__ import annotations

import os
from pathlib import Path

from annlab.errors import AnnlabError

UNSAFE_ENV = "ANNLAB_ALLOW_UNSAFE_MODELS"


def load_keras_model(path: str | Path, allow_unsafe: bool | None = None):
    """Load with `safe_mode=True` unless the user opted in (flag or ANNLAB_ALLOW_UNSAFE_MODELS=1).

    Safe mode refuses Lambda layers, whose serialized Python bytecode would run on load.
    """
    from annlab.quiet_tensorflow import quiet_tensorflow

    quiet_tensorflow()
    import keras

    import annlab.models.subclassed  # noqa: F401  registers WideAndDeepModel for deserialization

    path = Path(path)
    if allow_unsafe is None:
        allow_unsafe = os.environ.get(UNSAFE_ENV, "") == "1"
    if not path.is_file():
        raise AnnlabError(f"Model file '{path}' not found: run `dvc repro train` to create it.")
    try:
        return keras.saving.load_model(path, safe_mode=not allow_unsafe)
    except Exception as err:  # Keras raises ValueError, OSError, zipfile errors, ...
        text = str(err)
        if "safe_mode" in text or "lambda" in text.lower():
            raise AnnlabError(
                f"Model file '{path}' holds a Lambda layer (code that would run on load) and is "
                f"refused in safe mode. Load it only if you trust its source: set {UNSAFE_ENV}=1."
            ) from None
        first = text.splitlines()[0][:200] if text else type(err).__name__
        raise AnnlabError(
            f"Model file '{path}' is corrupt or not a Keras model ({first}): retrain it with "
            "`dvc repro train`."
        ) from None
