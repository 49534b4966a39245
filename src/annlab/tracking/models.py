"""Log a Keras model as an MLflow LoggedModel: Keras flavour, signature, input example.

`mlflow.keras.log_model(..., input_example=...)` fails in MLflow 3.17 with
`FileNotFoundError ... input_example.json` (mlflow#16183): `mlflow.keras.save_model` writes the
example before creating the model folder. `_KerasFlavor` creates the folder first and then
delegates to the real flavour, so the logged model is a plain `mlflow.keras` model; only its
python_function loader is annlab's (`pyfunc_loader`: safe mode, no progress bar per request).
Requirements are given explicitly: inferring them imports TensorFlow in a subprocess (~9 s).
"""

from __future__ import annotations

import contextlib
import os
from importlib import metadata as importlib_metadata
from typing import Any

import numpy as np

MODEL_NAME = "model"


class _KerasFlavor:
    """`mlflow.keras`, with the target folder created before the input example is written."""

    __name__ = "mlflow.keras"

    @staticmethod
    def save_model(path: str, **kwargs: Any) -> Any:
        import mlflow.keras

        os.makedirs(path, exist_ok=True)
        kwargs.pop("validate_serving_input", None)
        result = mlflow.keras.save_model(path=path, **kwargs)
        mlflow_model = kwargs.get("mlflow_model")
        if mlflow_model is not None:
            mlflow_model.flavors["python_function"]["loader_module"] = PYFUNC_LOADER
            mlflow_model.save(os.path.join(path, "MLmodel"))
        return result


PYFUNC_LOADER = "annlab.tracking.pyfunc_loader"


def pip_requirements() -> list[str]:
    reqs = []
    for dist in ("keras", "numpy", "mlflow"):
        reqs.append(f"{dist}=={importlib_metadata.version(dist)}")
    for tf in ("tensorflow-cpu", "tensorflow"):
        try:
            reqs.append(f"{tf}=={importlib_metadata.version(tf)}")
            break
        except importlib_metadata.PackageNotFoundError:
            continue
    return reqs


def example_rows(inputs: Any, n: int = 3) -> Any:
    if isinstance(inputs, dict):
        return {k: np.asarray(v[:n]) for k, v in inputs.items()}
    return np.asarray(inputs[:n])


def log_keras_model(
    model,
    example_inputs: Any,
    registered_model_name: str | None = None,
    metadata: dict[str, Any] | None = None,
):
    """Log `model` with a signature inferred from a few rows and annlab's model metadata
    (task, class names, input mapping); returns the ModelInfo."""
    from mlflow.models import infer_signature

    example = example_rows(example_inputs)
    outputs = model.predict(example, verbose=0)
    signature = infer_signature(example, outputs)
    with _requirements_taken_as_given():
        return _log(model, signature, example, registered_model_name, metadata)


@contextlib.contextmanager
def _requirements_taken_as_given():
    """Skip MLflow's check that the given requirements match this environment.

    The requirements are read from this very environment (`pip_requirements()`), so the check
    can only agree; it scans every installed distribution (~1.5 s of CPU per model logged).
    """
    import mlflow.utils.environment as environment

    original = getattr(environment, "warn_dependency_requirement_mismatches", None)
    if original is None:  # another MLflow version: leave it alone
        yield
        return
    environment.warn_dependency_requirement_mismatches = lambda *_args, **_kw: None
    try:
        yield
    finally:
        environment.warn_dependency_requirement_mismatches = original


def _log(model, signature, example, registered_model_name, metadata):
    from mlflow.models import Model

    return Model.log(
        artifact_path=None,
        name=MODEL_NAME,
        flavor=_KerasFlavor,
        model=model,
        signature=signature,
        input_example=example,
        pip_requirements=pip_requirements(),
        registered_model_name=registered_model_name,
        metadata=metadata,
        # MLflow would reload the model in this process to check the example (seconds per
        # run); the tests load every logged model as pyfunc instead.
        validate_serving_input=False,
    )
