"""Build, compile and fit one model on prepared splits; the tracking layer plugs in callbacks."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annlab.config.schema import Config
from annlab.data.split import Splits
from annlab.errors import AnnlabError, TrainingDiverged
from annlab.models.build import build_model, has_aux_output, model_inputs, model_targets


@dataclass
class FitResult:
    model: Any
    history: dict[str, list[float]]
    seconds: float
    loss: str
    metrics: list[str] = field(default_factory=list)
    lr_finder: Any = None  # LRFinderResult when training.lr_finder.enabled
    initial_epoch: int = 0  # > 0 when training resumed from a backup
    kept_epoch: int = 0  # the epoch (0-based, as in `history['epoch']`) whose weights the model holds
    replicas: int = 1  # devices training in sync (training.strategy=mirrored)

    @property
    def epochs_run(self) -> int:
        return len(next(iter(self.history.values()), []))


def resolve_verbose(verbose: Any) -> int:
    """Progress bar in a terminal, one quiet line per epoch in logs and CI."""
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return int(verbose)


def distribution_strategy(name: str):
    """`none`: TensorFlow's default; `mirrored`: data-parallel over the visible GPUs, or the
    logical CPU devices (training.logical_cpu_devices)."""
    import tensorflow as tf

    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    return tf.distribute.get_strategy()


def compile_model(
    cfg: Config,
    model,
    loss: str,
    metrics: list[str],
    learning_rate: float | None = None,
    steps_per_execution: int | None = None,
) -> None:
    from annlab.training.optimizers import build_optimizer

    if has_aux_output(cfg):
        weights = cfg.model.loss_weights or [0.9, 0.1]
        loss_arg: Any = {"output": loss, "aux_output": loss}
        metric_arg: Any = {"output": metrics, "aux_output": metrics}
        loss_weights: Any = {"output": weights[0], "aux_output": weights[1]}
    else:
        loss_arg, metric_arg, loss_weights = loss, metrics, None
    optimizer_cfg = cfg.optimizer
    if learning_rate is not None:
        from dataclasses import replace

        optimizer_cfg = replace(cfg.optimizer, learning_rate=learning_rate)
    model.compile(
        loss=loss_arg,
        optimizer=build_optimizer(optimizer_cfg),
        metrics=metric_arg,
        loss_weights=loss_weights,
        steps_per_execution=steps_per_execution or _steps_per_execution(cfg),
    )


def _steps_per_execution(cfg: Config) -> int:
    """Keras 3.15 cannot run several steps per call under MirroredStrategy (its multi-step
    loop fails with "You must feed a value for placeholder"): one step per call there."""
    return 1 if cfg.training.strategy == "mirrored" else cfg.training.steps_per_execution


EPOCHS_FILE = "epochs.csv"


def read_epochs(path: Path) -> dict[str, list[float]]:
    """Per-epoch metrics as Keras' CSVLogger wrote them (`epoch` first, 0-based)."""
    import csv

    if not path.is_file():
        return {}
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_epoch = {int(float(row["epoch"])): row for row in rows if row.get("epoch")}
    if not by_epoch:
        return {}
    ordered = [by_epoch[e] for e in sorted(by_epoch)]  # a repeated (resumed) epoch: last wins
    return {key: [float(row[key]) for row in ordered] for key in ordered[0]}


def fit(
    cfg: Config,
    splits: Splits,
    out_dir: Path,
    callbacks: list | None = None,
    state_dir: Path | None = None,
    tensorboard_dir: Path | None = None,
) -> FitResult:
    """Fit; with `state_dir`, every epoch is backed up there (weights, optimizer, metrics) so
    an interrupted run resumes from its last completed epoch when fitted again."""
    if cfg.model.name == "perceptron":
        from annlab.models.perceptron import fit_perceptron

        model, history, seconds, loss = fit_perceptron(cfg, splits)
        if cfg.objective.metric not in history:
            raise AnnlabError(
                f"Expected `objective.metric` to be a metric the perceptron logs "
                f"({', '.join(sorted(history))}). Received: objective.metric={cfg.objective.metric}."
            )
        return FitResult(model, history, seconds, loss, ["accuracy"])
    import keras

    from annlab.training.callbacks import configured_callbacks, objective_check, stop_on_non_finite_loss

    (X_train, y_train), (X_valid, y_valid) = splits.train, splits.valid
    train_inputs, train_targets = model_inputs(cfg, X_train), model_targets(cfg, y_train)
    # Seed right before the model exists: whatever ran before (tracking, data digests) may
    # have drawn random numbers, and the same seed must give the book script's exact weights.
    keras.utils.set_random_seed(cfg.seed)
    strategy = distribution_strategy(cfg.training.strategy)
    with strategy.scope():
        model, head = build_model(cfg, splits.meta, splits.scaler)
        finder = None
        learning_rate = None
        if cfg.training.lr_finder.enabled:
            from annlab.training.lr_finder import find_learning_rate

            compile_model(cfg, model, head.loss, head.metrics, steps_per_execution=1)
            finder = find_learning_rate(
                model, train_inputs, train_targets, cfg.training.batch_size, cfg.training.lr_finder
            )
            learning_rate = finder.suggested_rate if cfg.training.lr_finder.apply else None
        compile_model(cfg, model, head.loss, head.metrics, learning_rate=learning_rate)
    guard = stop_on_non_finite_loss()
    configured = configured_callbacks(cfg.training, out_dir, tensorboard_dir)
    probe = epoch_probe(cfg.training.epochs)
    all_callbacks = [guard, objective_check(cfg.objective.metric), *configured]
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
        all_callbacks += [  # metrics first: a resumed epoch may then repeat, never go missing
            keras.callbacks.CSVLogger(str(state_dir / EPOCHS_FILE), append=True),
            keras.callbacks.BackupAndRestore(str(state_dir / "backup"), delete_checkpoint=True),
        ]
    all_callbacks.append(probe)
    all_callbacks += callbacks or []
    from annlab.signals import safe_interrupt_callback

    all_callbacks.append(safe_interrupt_callback())  # last: after the epoch's backup
    batch_size = cfg.training.batch_size
    start = time.perf_counter()
    history = model.fit(
        train_inputs,
        train_targets,
        validation_data=validation_batches(
            model_inputs(cfg, X_valid), model_targets(cfg, y_valid), batch_size
        ),
        epochs=cfg.training.epochs,
        batch_size=batch_size,
        steps_per_epoch=math.ceil(len(X_train) / batch_size),
        callbacks=all_callbacks,
        verbose=resolve_verbose(cfg.training.verbose),
    )
    seconds = time.perf_counter() - start
    if guard.reason is not None:
        raise TrainingDiverged(
            f"Training stopped: {guard.reason}. Lower `optimizer.learning_rate` "
            f"(now {cfg.optimizer.learning_rate}) or check the data for extreme values."
        )
    hist = {
        "epoch": [float(e) for e in history.epoch],
        **{k: [float(v) for v in values] for k, values in history.history.items()},
    }
    if state_dir is not None:
        hist = read_epochs(state_dir / EPOCHS_FILE) or hist  # all epochs, resumed ones too
    restored = restored_epoch(
        next((c for c in configured if isinstance(c, keras.callbacks.EarlyStopping)), None)
    )
    return FitResult(
        model,
        hist,
        seconds,
        head.loss,
        head.metrics,
        lr_finder=finder,
        initial_epoch=probe.initial_epoch,
        kept_epoch=int(hist["epoch"][-1]) if restored is None else restored,
        replicas=strategy.num_replicas_in_sync,
    )


def validation_batches(inputs: Any, targets: Any, batch_size: int):
    """The validation split as a `tf.data` pipeline of the batches Keras would cut from the
    arrays (same order and sizes, so the same scores).

    Why not the arrays: Keras' array pipeline (shuffled indices, a parallel gather, prefetch)
    takes ~25 ms to start an iterator on 2 cores, and `fit` starts two for validation every
    epoch; a plain slices-and-batch pipeline starts in ~2 ms. On small data sets (the embedded
    ones, the tests) starting iterators was half of every epoch. The training arrays stay with
    Keras, whose shuffling must match the book's plain script exactly; `fit` is given
    `steps_per_epoch`, its full length, so Keras starts one iterator per epoch for them
    rather than two (the same batches, the same weights: tests/test_training.py pins both).
    """
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((inputs, targets)).batch(batch_size)


def restored_epoch(early_stopping) -> int | None:
    """The epoch whose weights `EarlyStopping` put back at the end of training, or None.

    Keras has no call that says so. Its EarlyStopping (3.x) keeps the weights of its monitor's
    best epoch in `best_weights` / `best_epoch` when `restore_best_weights` is on, and sets
    them in `on_train_end` whenever it kept any, stopped early or not. The public attributes
    are read here only; tests/test_training.py pins the behaviour on the saved model.
    """
    if early_stopping is None or not early_stopping.restore_best_weights:
        return None
    if early_stopping.best_weights is None:
        return None
    return int(early_stopping.best_epoch)


def epoch_probe(epochs: int):
    """A Keras callback that records the first epoch this `fit` runs: after a resume from a
    backup it is the epoch after the last completed one (Keras numbers epochs absolutely)."""
    import keras

    class EpochProbe(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.initial_epoch = epochs  # no epoch left to run: all were done before
            self._begun = False

        def on_epoch_begin(self, epoch, logs=None):
            if not self._begun:
                self.initial_epoch, self._begun = int(epoch), True

    return EpochProbe()
