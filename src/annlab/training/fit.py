"""Build, compile and fit one model on prepared splits; the tracking layer plugs in callbacks."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annlab.config.schema import Config
from annlab.data.split import Splits
from annlab.errors import TrainingDiverged
from annlab.models.build import build_model, has_aux_output, model_inputs, model_targets


@dataclass
class FitResult:
    model: Any
    history: dict[str, list[float]]
    seconds: float
    loss: str
    metrics: list[str] = field(default_factory=list)
    initial_epoch: int = 0

    @property
    def epochs_run(self) -> int:
        return len(next(iter(self.history.values()), []))


def resolve_verbose(verbose: Any) -> int:
    """Progress bar in a terminal, one quiet line per epoch in logs and CI."""
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return int(verbose)


def compile_model(cfg: Config, model, loss: str, metrics: list[str]) -> None:
    from annlab.training.optimizers import build_optimizer

    if has_aux_output(cfg):
        weights = cfg.model.loss_weights or [0.9, 0.1]
        loss_arg: Any = {"output": loss, "aux_output": loss}
        metric_arg: Any = {"output": metrics, "aux_output": metrics}
        loss_weights: Any = {"output": weights[0], "aux_output": weights[1]}
    else:
        loss_arg, metric_arg, loss_weights = loss, metrics, None
    model.compile(loss=loss_arg, optimizer=build_optimizer(cfg.optimizer), metrics=metric_arg,
                  loss_weights=loss_weights, steps_per_execution=cfg.training.steps_per_execution)


def fit(cfg: Config, splits: Splits, out_dir: Path, callbacks: list | None = None,
        backup_dir: Path | None = None, tensorboard_dir: Path | None = None) -> FitResult:
    from annlab.training.callbacks import configured_callbacks, stop_on_non_finite_loss

    model, head = build_model(cfg, splits.meta, splits.scaler)
    compile_model(cfg, model, head.loss, head.metrics)
    guard = stop_on_non_finite_loss()
    all_callbacks = [guard, *configured_callbacks(cfg.training, out_dir, backup_dir,
                                                  tensorboard_dir), *(callbacks or [])]
    (X_train, y_train), (X_valid, y_valid) = splits.train, splits.valid
    start = time.perf_counter()
    history = model.fit(
        model_inputs(cfg, X_train), model_targets(cfg, y_train),
        validation_data=(model_inputs(cfg, X_valid), model_targets(cfg, y_valid)),
        epochs=cfg.training.epochs, batch_size=cfg.training.batch_size,
        callbacks=all_callbacks, verbose=resolve_verbose(cfg.training.verbose),
    )
    seconds = time.perf_counter() - start
    if guard.reason is not None:
        raise TrainingDiverged(
            f"Training stopped: {guard.reason}. Lower `optimizer.learning_rate` "
            f"(now {cfg.optimizer.learning_rate}) or check the data for extreme values."
        )
    hist = {k: [float(v) for v in values] for k, values in history.history.items()}
    return FitResult(model, hist, seconds, head.loss, head.metrics)
