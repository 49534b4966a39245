"""Scores of a trained model on the held-out test split, from its outputs there (NumPy only:
the evaluate stage imports neither TensorFlow nor scikit-learn, whose import alone takes 1 s)."""

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


def confusion_matrix(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows: actual class, columns: predicted class (scikit-learn's layout)."""
    index = y.astype(np.int64) * n_classes + pred.astype(np.int64)
    return np.bincount(index, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_scores(matrix: np.ndarray) -> tuple[np.ndarray, ...]:
    """Precision, recall, F1 and support per class, 0 where undefined (as scikit-learn's
    `precision_recall_fscore_support(..., zero_division=0)`; tests/test_evaluation.py checks)."""
    tp = np.diag(matrix).astype(np.float64)
    support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(tp), where=both > 0)
    return precision, recall, f1, support


def regression_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MSE, RMSE, MAE and R² (1 for a perfect fit of a constant target, as scikit-learn)."""
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    residual = y - pred
    mse = float(np.mean(residual**2))
    total = float(np.sum((y - y.mean()) ** 2))
    unexplained = float(np.sum(residual**2))
    r2 = 1.0 - unexplained / total if total > 0 else (1.0 if unexplained == 0 else 0.0)
    return {"mse": mse, "rmse": float(np.sqrt(mse)), "mae": float(np.mean(np.abs(residual))), "r2": r2}


def _classification(output, y, splits: Splits, task: str):
    names = splits.meta.class_names or [str(i) for i in range(output.shape[-1])]
    proba = class_probabilities(output, task)
    pred = proba.argmax(axis=1)
    matrix = confusion_matrix(y, pred, len(names))
    precision, recall, f1, support = per_class_scores(matrix)
    metrics = {
        "test_accuracy_argmax": float(np.mean(pred == y)),
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
        "confusion_matrix": matrix.tolist(),
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
    pred = output.reshape(len(y), -1)[:, 0]
    metrics = {f"test_{k}": v for k, v in regression_scores(y, pred).items()}
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
