"""Keras callbacks from config: each one switchable, none home-made where Keras has one."""

from __future__ import annotations

import math
from pathlib import Path

from annlab.config.schema import TrainingConfig


def _keras_callbacks():
    import keras

    class StopOnNonFiniteLoss(keras.callbacks.Callback):
        """Like `TerminateOnNaN`, but remembers why, so the run can fail with the reason."""

        def __init__(self) -> None:
            super().__init__()
            self.reason: str | None = None

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                self.reason = f"loss became {float(loss)} at batch {batch}"
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            loss = (logs or {}).get("loss")
            if self.reason is None and loss is not None and not math.isfinite(float(loss)):
                self.reason = f"loss became {float(loss)} in epoch {epoch + 1}"
                self.model.stop_training = True

    return StopOnNonFiniteLoss


def stop_on_non_finite_loss():
    return _keras_callbacks()()


def objective_check(metric: str):
    """A Keras callback that fails training after its first epoch when `objective.metric` is
    not among the metrics the model logs: runs would be ranked on nothing."""
    import keras

    from annlab.errors import AnnlabError

    class ObjectiveCheck(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logged = sorted(logs or {})
            if metric not in logged:
                raise AnnlabError(
                    f"Expected `objective.metric` to be a metric this model logs "
                    f"({', '.join(logged)}), e.g. objective.metric=val_loss "
                    f"objective.direction=minimize. Received: objective.metric={metric}."
                )

    return ObjectiveCheck()


def tensorboard_run_dir(cfg: TrainingConfig, experiment_name: str) -> Path:
    """A folder of its own for one training's TensorBoard logs: the book's naming by start time
    (`<experiment>-YYYYmmdd-HHMMSS`) plus a random suffix, so trainings that start in the same
    second (a parallel sweep) do not show up in TensorBoard as one run."""
    import secrets
    import time

    return (
        Path(cfg.tensorboard.log_dir)
        / f"{experiment_name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    )


def configured_callbacks(cfg: TrainingConfig, out_dir: Path, tensorboard_dir: Path | None) -> list:
    import keras

    callbacks: list = []
    if cfg.early_stopping.enabled:
        es = cfg.early_stopping
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=es.monitor, patience=es.patience, restore_best_weights=es.restore_best_weights
            )
        )
    if cfg.checkpoint.enabled:
        callbacks.append(
            keras.callbacks.ModelCheckpoint(
                str(out_dir / "checkpoint.keras"), save_best_only=cfg.checkpoint.save_best_only
            )
        )
    if cfg.tensorboard.enabled and tensorboard_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(tensorboard_dir)))
    return callbacks
