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


PYFUNC_LOADER = "annlab.tracking.pyfunc_loader"


class _KerasFileFlavor:
    """MLflow's Keras flavour for a model already saved as `.keras`: the file is copied, not
    saved again, so logging needs no TensorFlow (it runs in annlab's MLflow helper process).

    MLflow's public pyfunc API writes the model folder (`data/model.keras`, environment files,
    signature, input example, metadata) with annlab's loader module for `pyfunc`; the `keras`
    flavour entry names the same file the way `mlflow.keras` writes and reads it, so
    `mlflow.keras.load_model` and `mlflow.pyfunc.load_model` both load it.
    """

    __name__ = "mlflow.keras"

    @staticmethod
    def save_model(path: str, mlflow_model: Any, keras_file: str, **kwargs: Any) -> None:
        import mlflow.pyfunc

        kwargs.pop("validate_serving_input", None)
        mlflow.pyfunc.save_model(
            path=path, loader_module=PYFUNC_LOADER, data_path=keras_file, mlflow_model=mlflow_model, **kwargs
        )
        mlflow_model.add_flavor(
            "keras", keras_version=importlib_metadata.version("keras"), save_exported_model=False, data="data"
        )
        mlflow_model.save(os.path.join(path, "MLmodel"))


def log_model_file(keras_file: str, example: Any, outputs: Any, metadata: dict[str, Any] | None = None):
    """Log a saved `.keras` model as the run's LoggedModel, with the signature of `example`
    rows and the model's `outputs` on them; returns the ModelInfo."""
    from mlflow.models import Model, infer_signature

    return Model.log(
        artifact_path=None,
        name=MODEL_NAME,
        flavor=_KerasFileFlavor,
        keras_file=keras_file,
        signature=infer_signature(example, outputs),
        input_example=example,
        pip_requirements=pip_requirements(),
        metadata=metadata,
        # MLflow would load the model to check the example: TensorFlow in the helper process,
        # seconds per run; the tests load every logged model as pyfunc instead.
        validate_serving_input=False,
    )


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
