"""Find a trained model and its metadata from whatever reference the user has at hand.

Three kinds of reference give the same thing (a Keras model plus the `meta.json` that training
wrote): the pipeline's `models/model.keras` (or its folder), an MLflow run (`runs:/ID` or a bare
run id), and any MLflow model URI (`models:/NAME@champion`, `models:/NAME/3`, `models:/m-...`).
MLflow models are downloaded and their `model.keras` loaded in safe mode, like local files.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annlab.errors import AnnlabError
from annlab.io import read_json

META_FILE = "meta.json"
MODEL_FILE = "model.keras"
MODEL_URI_TAG = "annlab.model_uri"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
META_KEYS = ("task", "feature_names", "input_shape")


@dataclass
class LoadedModel:
    """A Keras model, the metadata saved with it, and where it came from (for messages)."""

    model: Any
    meta: dict[str, Any]
    source: str


def load_model(ref: str) -> LoadedModel:
    """Load the model `ref` names: a path, `runs:/ID`, a bare run id, or `models:/...`."""
    from annlab.training.setup import quiet_tensorflow

    quiet_tensorflow()
    if ref.startswith("models:/"):
        return _load_mlflow_model(ref, ref)
    if ref.startswith("runs:/") or (RUN_ID.match(ref) and not Path(ref).exists()):
        return _load_mlflow_model(model_uri_of_run(ref), ref)
    return _load_local(Path(ref))


def _load_local(path: Path) -> LoadedModel:
    from annlab.models.loading import load_keras_model

    file = path / MODEL_FILE if path.is_dir() else path
    if not file.exists():
        raise AnnlabError(
            f"Model '{path}' not found: give the pipeline's models/model.keras (run `dvc repro` "
            "to create it), an MLflow run id (runs:/ID) or a model URI (models:/NAME@champion)."
        )
    meta_file = file.parent / META_FILE
    if not meta_file.is_file():
        raise AnnlabError(
            f"'{meta_file}' not found beside '{file}': annlab needs the task, feature and class "
            "names that training writes there; retrain with `dvc repro train`."
        )
    meta = read_json(meta_file)
    check_meta(meta, str(meta_file))
    return LoadedModel(load_keras_model(file), meta, str(file))


def check_meta(meta: Any, where: str) -> None:
    missing = [k for k in META_KEYS if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise AnnlabError(
            f"Model metadata in {where} lacks {missing}: it was not trained by "
            "annlab, or by an older version; retrain it."
        )


def _configure_store() -> str:
    from annlab.config.schema import TrackingConfig
    from annlab.tracking import store

    return store.configure(TrackingConfig())


def model_uri_of_run(ref: str) -> str:
    """The LoggedModel of a run: the `annlab.model_uri` tag, else MLflow's search by run."""
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = _configure_store()
    parts = ref.removeprefix("runs:/").strip("/").split("/", 1)
    run_id, name = parts[0], (parts[1] if len(parts) > 1 else None)
    try:
        run = mlflow.get_run(run_id)
    except MlflowException:
        raise AnnlabError(
            f"MLflow run '{run_id}' not found in {uri}: check the id (mlflow ui), "
            "or set MLFLOW_TRACKING_URI to the store that holds it."
        ) from None
    tagged = run.data.tags.get(MODEL_URI_TAG)
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


def _load_mlflow_model(model_uri: str, ref: str) -> LoadedModel:
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    from annlab.models.loading import load_keras_model

    store_uri = _configure_store()
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
        file = local / keras_flavor.get("data", "data") / MODEL_FILE
        meta = mlmodel.metadata or {}
        check_meta(meta, f"model '{ref}'")
        model = load_keras_model(file)
    source = ref if ref == model_uri else f"{ref} ({model_uri})"
    return LoadedModel(model, meta, source)
