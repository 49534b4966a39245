"""The chapter's figures: learning curves, confusion matrix, sample predictions, residuals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curves(history: dict[str, list[float]], path: Path, task: str) -> Path:
    """The learning curves as a PNG (see `learning_curves_figure`)."""
    plt = _plt()
    fig = learning_curves_figure(history, task)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def learning_curves_figure(history: dict[str, list[float]], task: str):
    """Training (solid) and validation (dashed) curves per epoch, grid on.

    For classification the losses get a panel of their own whose y axis fits them (from 0 to
    the largest finite loss: a loss starts above 1 whenever there are more than e classes'
    worth of uncertainty, e.g. ln 10 = 2.3 for ten classes), and accuracy-like metrics stay in
    [0, 1] beside it, as the book plots them. Regression metrics share one fitted panel.
    """
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    epochs = history.get("epoch") or list(range(1, len(next(iter(history.values()))) + 1))
    curves = {k: v for k, v in history.items() if k != "epoch"}
    losses = {k: v for k, v in curves.items() if "loss" in k}
    others = {k: v for k, v in curves.items() if k not in losses}
    panels = [curves] if task == "regression" or not others or not losses else [losses, others]
    fig, axes = plt.subplots(1, len(panels), figsize=(8 if len(panels) == 1 else 12, 5), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        for key, values in panel.items():
            ax.plot(epochs, values, "--" if key.startswith("val_") else "-", label=key)
        ax.set_xlabel("Epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True)
        ax.set_xlim(min(epochs), max(epochs) if len(epochs) > 1 else min(epochs) + 1)
        ax.legend()
        if task != "regression" and panel is others:
            ax.set_ylim(0, 1)
        elif task != "regression":
            finite = np.asarray([x for v in panel.values() for x in v], dtype=np.float64)
            finite = finite[np.isfinite(finite)]
            top = float(finite.max()) if finite.size else 1.0
            ax.set_ylim(0, top * 1.05 if top > 0 else 1.0)
    if len(panels) == 2:
        axes[0][0].set_title("Loss")
        axes[0][1].set_title("Accuracy")
    fig.suptitle("Learning curves")
    fig.tight_layout()
    return fig


def confusion_matrix(matrix: list[list[int]], class_names: list[str], path: Path) -> Path:
    plt = _plt()
    m = np.asarray(matrix)
    size = max(5, 0.6 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("Actual")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(
                j,
                i,
                str(m[i, j]),
                ha="center",
                va="center",
                color="white" if m[i, j] > m.max() / 2 else "black",
                fontsize=8,
            )
    ax.set_title("Confusion matrix (test set)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def sample_images(
    images: np.ndarray, actual: list[str], predicted: list[str], path: Path, n: int = 24
) -> Path:
    """A grid of test images titled with the predicted class; mistakes in red."""
    plt = _plt()
    n = min(n, len(images))
    cols = 8
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.4, rows * 1.7))
    for i, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i], cmap="binary", interpolation="nearest")
        wrong = actual[i] != predicted[i]
        ax.set_title(
            predicted[i] if not wrong else f"{predicted[i]}\n(is {actual[i]})",
            fontsize=8,
            color="red" if wrong else "black",
        )
    fig.suptitle("Test images with predicted class (mistakes in red)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def predicted_vs_actual(actual: np.ndarray, predicted: np.ndarray, path: Path) -> Path:
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    ax1.scatter(actual, predicted, s=6, alpha=0.5)
    lo, hi = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    ax1.plot([lo, hi], [lo, hi], "r--", label="perfect")
    ax1.set_xlabel("Actual")
    ax1.set_ylabel("Predicted")
    ax1.set_title("Predicted against actual (test set)")
    ax1.grid(True)
    ax1.legend()
    residuals = predicted - actual
    ax2.scatter(predicted, residuals, s=6, alpha=0.5)
    ax2.axhline(0, color="r", linestyle="--")
    ax2.set_xlabel("Predicted")
    ax2.set_ylabel("Residual (predicted - actual)")
    ax2.set_title("Residuals")
    ax2.grid(True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def read_history(path: Path) -> dict[str, Any]:
    import pandas as pd

    frame = pd.read_csv(path)
    return {col: frame[col].tolist() for col in frame.columns}


def _as_numbers(values: list[str | None]) -> list[float] | None:
    try:
        return [float(v) for v in values]  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def metric_against_params(
    points: dict[str, list[tuple[str | None, float]]], metric: str, direction: str, path: Path
) -> Path:
    """One panel per swept setting: the metric of each run against the setting's value
    (numbers on a numeric axis, log-scaled when they span decades; other values as categories)."""
    plt = _plt()
    n = len(points)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.6 * rows), squeeze=False)
    for ax, (param, pairs) in zip(axes.ravel(), points.items(), strict=False):
        raw = [p for p, _ in pairs]
        ys = [v for _, v in pairs]
        xs = _as_numbers(raw)
        if xs is None:
            labels = sorted({str(r) for r in raw})
            xs = [float(labels.index(str(r))) for r in raw]
            ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
        elif min(xs) > 0 and max(xs) / min(xs) >= 30:
            ax.set_xscale("log")
        ax.scatter(xs, ys, alpha=0.7)
        best = (max if direction == "maximize" else min)(range(len(ys)), key=ys.__getitem__)
        ax.scatter([xs[best]], [ys[best]], color="red", s=60, label="best", zorder=3)
        ax.set_xlabel(param)
        ax.set_ylabel(metric)
        ax.grid(True)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    axes.ravel()[0].legend()
    fig.suptitle(f"{metric} against each swept setting ({direction})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def top_learning_curves(curves: dict[str, dict[str, list[float]]], metric: str, path: Path) -> Path:
    """The validation metric per epoch of the top runs (solid), training counterpart dashed."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, history) in enumerate(curves.items()):
        color = colors[i % len(colors)]
        for key, values in history.items():
            style = "-" if key == metric else "--"
            ax.plot(range(1, len(values) + 1), values, style, color=color, label=f"{label} ({key})")
    ax.set_xlabel("Epoch")
    ax.set_ylabel(metric)
    ax.grid(True)
    ax.legend(fontsize=8)
    ax.set_title(f"Learning curves of the top {len(curves)} runs")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
