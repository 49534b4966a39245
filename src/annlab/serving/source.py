"""Find a trained model and its metadata from whatever reference the user has at hand.

Three kinds of reference give the same thing (a Keras model plus the `meta.json` that training
wrote): the pipeline's `models/model.keras` (or its folder), an MLflow run (`runs:/ID` or a bare
run id), and any MLflow model URI (`models:/NAME@champion`, `models:/NAME/3`, `models:/m-...`).
MLflow models are downloaded and their `model.keras` loaded in safe mode, like local files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annlab.errors import AnnlabError
from annlab.io import read_json

META_FILE = "meta.json"
MODEL_FILE = "model.keras"
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
    from annlab.quiet_tensorflow import quiet_tensorflow

    quiet_tensorflow()
    if ref.startswith("models:/"):
        return _load_mlflow_model(ref, ref)
    if ref.startswith("runs:/") or (RUN_ID.match(ref) and not Path(ref).exists()):
        from annlab.tracking.models import model_uri_of_run

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


def _load_mlflow_model(model_uri: str, ref: str) -> LoadedModel:
    from annlab.models.loading import load_keras_model
    from annlab.tracking.models import downloaded_keras_model

    with downloaded_keras_model(model_uri, ref) as (file, meta):
        check_meta(meta, f"model '{ref}'")
        model = load_keras_model(file)
    source = ref if ref == model_uri else f"{ref} ({model_uri})"
    return LoadedModel(model, meta, source)
