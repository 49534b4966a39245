"""Scores of a trained model on the held-out test split, from its outputs there."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from annlab.config.schema import Config
from annlab.data.split import Splits
from annlab.models.build import has_aux_output
from annlab.models.feeding import MAIN_OUTPUT, class_probabilities

TOP_K = 3


@dataclass
class Evaluation:
    metrics: dict[str, float]
    predictions: dict[str, np.ndarray]  # columns for reports/evaluation/predictions.csv
    details: dict[str, Any] = field(default_factory=dict)


def evaluate(
    cfg: Config, splits: Splits, outputs: dict[str, np.ndarray], keras_scores: dict[str, float]
) -> Evaluation:
    """Scores of the model's `outputs` on the test split (from the train stage, with Keras' own
    test loss and metrics in `keras_scores`): no TensorFlow needed here."""
    _, y = splits.test
    metrics = {f"test_{k}": float(v) for k, v in keras_scores.items()}
    task = splits.meta.task
    if task in ("multiclass", "binary"):
        extra, predictions, details = _classification(outputs[MAIN_OUTPUT], y, splits, task)
    else:
        extra, predictions, details = _regression(outputs[MAIN_OUTPUT], y)
        if has_aux_output(cfg) and "aux_output" in outputs:
            aux, _, _ = _regression(outputs["aux_output"], y)
            extra.update({k.replace("test_", "test_aux_", 1): v for k, v in aux.items()})
    metrics.update(extra)
    return Evaluation(metrics, predictions, details)


def _classification(output, y, splits: Splits, task: str):
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    names = splits.meta.class_names or [str(i) for i in range(output.shape[-1])]
    proba = class_probabilities(output, task)
    pred = proba.argmax(axis=1)
    labels = list(range(len(names)))
    precision, recall, f1, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    metrics = {
        "test_accuracy_sklearn": float(accuracy_score(y, pred)),
        "test_macro_f1": float(np.mean(f1)),
    }
    per_class = {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(names, precision, recall, f1, support, strict=True)
    }
    top = np.argsort(-proba, axis=1)[:, :TOP_K]
    predictions = {
        "actual": np.asarray([names[i] for i in y]),
        "predicted": np.asarray([names[i] for i in pred]),
        "probability": proba[np.arange(len(pred)), pred],
        "correct": pred == y,
    }
    details = {
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(y, pred, labels=labels).tolist(),
        "class_names": names,
        "first_predictions": [
            {
                "actual": names[int(y[i])],
                "top": [
                    {"class": names[int(j)], "probability": round(float(proba[i, j]), 4)} for j in top[i]
                ],
            }
            for i in range(min(3, len(y)))
        ],
    }
    return metrics, predictions, details


def _regression(output, y):
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    pred = output.reshape(len(y), -1)[:, 0]
    mse = float(mean_squared_error(y, pred))
    metrics = {
        "test_mse": mse,
        "test_rmse": float(np.sqrt(mse)),
        "test_mae": float(mean_absolute_error(y, pred)),
        "test_r2": float(r2_score(y, pred)),
    }
    predictions = {
        "actual": np.asarray(y, dtype=np.float64),
        "predicted": pred.astype(np.float64),
        "residual": (pred - y).astype(np.float64),
    }
    return (
        metrics,
        predictions,
        {
            "first_predictions": [
                {"actual": float(y[i]), "predicted": float(pred[i])} for i in range(min(3, len(y)))
            ]
        },
    )
