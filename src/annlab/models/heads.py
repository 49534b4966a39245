"""Output layer, loss and metrics chosen from the task, so configs rarely need to name them."""

from __future__ import annotations

from dataclasses import dataclass

from annlab.config.schema import CLASSIFICATION_LOSSES, REGRESSION_LOSSES, Config
from annlab.data.dataset import DatasetMeta
from annlab.errors import AnnlabError

DEFAULT_ACTIVATION = {
    "multiclass": "softmax",
    "binary": "sigmoid",
    "multilabel": "sigmoid",
    "regression": None,
}
DEFAULT_LOSS = {
    "multiclass": "sparse_categorical_crossentropy",
    "binary": "binary_crossentropy",
    "multilabel": "binary_crossentropy",
    "regression": "mse",
}


@dataclass
class Head:
    units: int
    activation: str | None
    loss: str
    metrics: list[str]


def head_for(cfg: Config, meta: DatasetMeta) -> Head:
    task = meta.task
    activation = cfg.model.output_activation
    if activation == "auto":
        activation = DEFAULT_ACTIVATION[task]
    elif activation == "linear":
        activation = None
    loss = DEFAULT_LOSS[task] if cfg.training.loss == "auto" else cfg.training.loss
    if task == "regression" and loss not in REGRESSION_LOSSES:
        raise AnnlabError(
            f"`training.loss`={loss} does not fit the regression target of {meta.name!r}: "
            "use mse, mae or huber (or auto)."
        )
    if task != "regression" and loss not in CLASSIFICATION_LOSSES:
        raise AnnlabError(
            f"`training.loss`={loss} does not fit the {task} target of {meta.name!r}: use a "
            "cross-entropy loss (or auto)."
        )
    if task == "multiclass" and activation != "softmax":
        raise AnnlabError(
            f"`model.output_activation`={activation} does not fit a {task} target: use softmax (or auto)."
        )
    metrics = cfg.training.metrics
    if metrics == "auto":
        metrics = ["accuracy"] if task != "regression" else ["RootMeanSquaredError", "mae"]
    elif isinstance(metrics, str):
        metrics = [metrics]
    return Head(meta.n_outputs, activation, loss, list(metrics))
