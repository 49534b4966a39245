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
import tempfile
from collections.abc import Iterator
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

from annlab.errors import AnnlabError
from annlab.tracking import tags

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
    return _log(model, signature, example, registered_model_name, metadata)


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


def model_uri_of_run(ref: str) -> str:
    """The LoggedModel of a run (`runs:/ID`, `runs:/ID/NAME` or a bare id): the
    `annlab.model_uri` tag, else MLflow's search by run."""
    import mlflow

    from annlab.config.schema import TrackingConfig
    from annlab.tracking import queries

    client = queries.client(TrackingConfig())
    parts = ref.removeprefix("runs:/").strip("/").split("/", 1)
    run_id, name = parts[0], (parts[1] if len(parts) > 1 else None)
    run = queries.get_run(client, run_id)
    tagged = run.data.tags.get(tags.MODEL_URI)
    if tagged and name is None:
        return tagged
    found = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}'" + (f" AND name = '{name}'" if name else ""),
        order_by=[{"field_name": "creation_timestamp", "ascending": False}],
        output_format="list",
    )
    if not found:
        raise AnnlabError(
            f"MLflow run '{run_id}' has no logged model{f' named {name!r}' if name else ''}:"
            " it ran with `tracking.log_model=false` or failed before logging; "
            "pick another run."
        )
    return found[0].model_uri


@contextlib.contextmanager
def downloaded_keras_model(model_uri: str, ref: str) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Download an MLflow model into a temporary folder: (its `.keras` file, annlab's metadata),
    valid inside the `with` block."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    from annlab.config.schema import TrackingConfig
    from annlab.tracking import store

    store_uri = store.configure(TrackingConfig())
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one line of output
    with tempfile.TemporaryDirectory(prefix="annlab-model-") as tmp:
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp))
        except MlflowException as err:
            first = str(err).splitlines()[0][:200]
            raise AnnlabError(
                f"Model '{ref}' not found in {store_uri} ({first}): check the name and alias "
                "(`annlab promote` sets @champion) or set MLFLOW_TRACKING_URI."
            ) from None
        mlmodel = Model.load(str(local / "MLmodel"))
        keras_flavor = mlmodel.flavors.get("keras")
        if keras_flavor is None or keras_flavor.get("save_exported_model"):
            raise AnnlabError(
                f"Model '{ref}' is not a Keras model saved as .keras "
                f"(flavours: {', '.join(mlmodel.flavors)}): log it with annlab."
            )
        yield local / keras_flavor.get("data", "data") / "model.keras", dict(mlmodel.metadata or {})
