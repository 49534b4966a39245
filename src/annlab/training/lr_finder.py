"""The book's learning-rate finder: one epoch with the rate growing exponentially from
`min_rate` to `max_rate`, loss recorded per batch; the suggested rate is a tenth of the rate
at the lowest loss (a bit below where the loss starts to climb)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from annlab.config.schema import LRFinderConfig


@dataclass
class LRFinderResult:
    rates: list[float]
    losses: list[float]
    suggested_rate: float


def exponential_rate_callback(min_rate: float, max_rate: float, steps: int):
    import keras

    factor = math.exp(math.log(max_rate / min_rate) / max(steps - 1, 1))

    class ExponentialLearningRate(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.rates: list[float] = []
            self.losses: list[float] = []

        def on_train_begin(self, logs=None):
            self.model.optimizer.learning_rate.assign(min_rate)

        def on_train_batch_end(self, batch, logs=None):
            rate = float(self.model.optimizer.learning_rate.numpy())
            loss = float((logs or {}).get("loss", math.nan))
            self.rates.append(rate)
            self.losses.append(loss)
            finite = [v for v in self.losses if math.isfinite(v)]
            if not math.isfinite(loss) or (finite and loss > 4 * min(finite)):
                self.model.stop_training = True  # diverged: the rest of the curve says nothing
            self.model.optimizer.learning_rate.assign(rate * factor)

    return ExponentialLearningRate()


def find_learning_rate(model, inputs, targets, batch_size: int, cfg: LRFinderConfig
                       ) -> LRFinderResult:
    """Run the finder on `model` (compiled with steps_per_execution=1); weights are restored."""
    n = len(targets["output"]) if isinstance(targets, dict) else len(targets)
    steps = max(1, math.ceil(n / batch_size))
    initial = model.get_weights()
    callback = exponential_rate_callback(cfg.min_rate, cfg.max_rate, steps)
    model.fit(inputs, targets, epochs=1, batch_size=batch_size, callbacks=[callback], verbose=0)
    model.set_weights(initial)
    pairs = [(r, loss) for r, loss in zip(callback.rates, callback.losses, strict=True)
             if math.isfinite(loss)]
    best_rate = min(pairs, key=lambda p: p[1])[0] if pairs else cfg.min_rate
    return LRFinderResult(callback.rates, callback.losses, best_rate / 10)


def plot_lr_finder(result: LRFinderResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot(result.rates, result.losses)
    ax.set_xscale("log")
    ax.axvline(result.suggested_rate, color="r", linestyle="--",
               label=f"suggested {result.suggested_rate:.2g}")
    finite = [v for v in result.losses if math.isfinite(v)]
    if finite:
        ax.set_ylim(min(finite) * 0.9, min(finite) * 4)
    ax.set_xlabel("Learning rate (log scale)")
    ax.set_ylabel("Loss")
    ax.grid(True)
    ax.legend()
    ax.set_title("Learning-rate finder")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
