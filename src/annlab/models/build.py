"""One entry point from a validated config to a Keras model, plus how data is fed to it."""

from __future__ import annotations

from typing import Any

import numpy as np

from annlab.config.schema import Config
from annlab.data.dataset import DatasetMeta
from annlab.errors import AnnlabError

TWO_INPUT_MODELS = ("wide_deep_subclassed",)


def uses_two_inputs(cfg: Config) -> bool:
    return cfg.model.name in TWO_INPUT_MODELS or (
        cfg.model.name == "wide_deep" and cfg.model.wide_features is not None
    )


def has_aux_output(cfg: Config) -> bool:
    return cfg.model.name in ("wide_deep", "wide_deep_subclassed") and cfg.model.aux_output


def check_model_fits_data(cfg: Config, meta: DatasetMeta) -> None:
    """Config-against-data checks that need no TensorFlow, run before any training starts."""
    m = cfg.model
    if m.name in ("wide_deep", "wide_deep_subclassed") and meta.is_image:
        raise AnnlabError(
            f"model={m.name} takes tabular features; {meta.name!r} is an image data set: use model=mlp."
        )
    if uses_two_inputs(cfg):
        n_features = int(np.prod(meta.input_shape))
        for key in ("wide_features", "deep_features"):
            indices = getattr(m, key)
            if not indices:
                raise AnnlabError(
                    f"Expected `model.{key}` to list feature indices for a "
                    f"two-input model. Received: model.{key}={indices}."
                )
            bad = [i for i in indices if not 0 <= i < n_features]
            if bad:
                raise AnnlabError(
                    f"`model.{key}` has indices {bad} out of range for {meta.name!r}, which has "
                    f"{n_features} features (valid: 0..{n_features - 1})."
                )
    if m.name != "perceptron":
        from annlab.models.heads import head_for

        head_for(cfg, meta)  # a loss or output activation that does not fit the task
    elif meta.task not in ("binary", "multiclass"):
        raise AnnlabError(
            f"model=perceptron is a classifier; {meta.name!r} is a {meta.task} task: "
            "use model=mlp for regression."
        )
    if has_aux_output(cfg) and m.loss_weights is not None and len(m.loss_weights) != 2:
        raise AnnlabError(
            f"Expected `model.loss_weights` to have 2 values (main, auxiliary). Received: {m.loss_weights}."
        )


def build_model(cfg: Config, meta: DatasetMeta, scaler: dict[str, Any]):
    from annlab.models.heads import head_for

    check_model_fits_data(cfg, meta)
    head = head_for(cfg, meta)
    if cfg.model.name == "mlp":
        from annlab.models.mlp import build_mlp

        return build_mlp(cfg, meta, scaler, head), head
    if cfg.model.name == "wide_deep":
        from annlab.models.wide_deep import build_wide_deep

        return build_wide_deep(cfg, meta, scaler, head), head
    if cfg.model.name == "perceptron":
        raise AnnlabError("model=perceptron is trained by scikit-learn (annlab.models.perceptron).")
    if cfg.model.name == "wide_deep_subclassed":
        from annlab.models.subclassed import build_subclassed

        return build_subclassed(cfg, meta, scaler, head), head
    raise AnnlabError(f"model={cfg.model.name} is not a Keras model.")


def input_mapping(cfg: Config) -> dict[str, Any]:
    """How raw rows feed the configured model (saved in meta.json; see models.feeding)."""
    return {
        "two_inputs": uses_two_inputs(cfg),
        "wide_features": cfg.model.wide_features,
        "deep_features": cfg.model.deep_features,
    }


def model_inputs(cfg: Config, X: np.ndarray) -> Any:
    """Raw feature rows -> what the model's inputs take (a dict for two-input models)."""
    from annlab.models.feeding import feed

    return feed(input_mapping(cfg), X)


def model_targets(cfg: Config, y: np.ndarray) -> Any:
    """The same target for main and auxiliary outputs, as in the book."""
    if has_aux_output(cfg):
        return {"output": y, "aux_output": y}
    return y
