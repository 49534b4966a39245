"""The book's learning-rate finder: one epoch (or as many as make 100 batches) with the rate
growing exponentially from `min_rate` to `max_rate`, loss recorded per batch; the suggested
rate is a tenth of the rate at the lowest (smoothed) loss, a bit below where it starts to climb.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from annlab.config.schema import LRFinderConfig

MIN_STEPS = 100


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
            self._previous_mean = 0.0

        def on_train_begin(self, logs=None):
            self.model.optimizer.learning_rate.assign(min_rate)

        def on_epoch_begin(self, epoch, logs=None):
            self._previous_mean = 0.0  # Keras restarts its running mean every epoch

        def on_train_batch_end(self, batch, logs=None):
            rate = float(self.model.optimizer.learning_rate.numpy())
            # Keras reports the epoch's running mean; recover this batch's own loss from it
            mean = float((logs or {}).get("loss", math.nan))
            loss = (batch + 1) * mean - batch * self._previous_mean
            self._previous_mean = mean
            self.rates.append(rate)
            self.losses.append(loss)
            finite = [v for v in self.losses if math.isfinite(v)]
            if not math.isfinite(loss) or (finite and loss > 4 * min(finite)):
                self.model.stop_training = True  # diverged: the rest of the curve says nothing
            self.model.optimizer.learning_rate.assign(rate * factor)

    return ExponentialLearningRate()


def find_learning_rate(model, inputs, targets, batch_size: int, cfg: LRFinderConfig) -> LRFinderResult:
    """Run the finder on `model` (compiled with steps_per_execution=1); weights are restored."""
    n = len(targets["output"]) if isinstance(targets, dict) else len(targets)
    steps_per_epoch = max(1, math.ceil(n / batch_size))
    # at least MIN_STEPS rates: one epoch of a small data set has too few batches to sweep
    epochs = max(1, math.ceil(MIN_STEPS / steps_per_epoch))
    initial = model.get_weights()
    callback = exponential_rate_callback(cfg.min_rate, cfg.max_rate, steps_per_epoch * epochs)
    model.fit(inputs, targets, epochs=epochs, batch_size=batch_size, callbacks=[callback], verbose=0)
    model.set_weights(initial)
    smoothed = _smooth(callback.losses)
    pairs = [(r, loss) for r, loss in zip(callback.rates, smoothed, strict=True) if math.isfinite(loss)]
    best_rate = min(pairs, key=lambda p: p[1])[0] if pairs else cfg.min_rate
    return LRFinderResult(callback.rates, smoothed, best_rate / 10)


def _smooth(losses: list[float], beta: float = 0.9) -> list[float]:
    """Exponential moving average (bias-corrected): single batches are too noisy to pick from."""
    out, average = [], 0.0
    for i, loss in enumerate(losses):
        if not math.isfinite(loss):
            out.append(loss)
            continue
        average = beta * average + (1 - beta) * loss
        out.append(average / (1 - beta ** (i + 1)))
    return out


def plot_lr_finder(result: LRFinderResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot(result.rates, result.losses)
    ax.set_xscale("log")
    ax.axvline(
        result.suggested_rate, color="r", linestyle="--", label=f"suggested {result.suggested_rate:.2g}"
    )
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
