"""Train one configuration and record it: the code both the DVC stage and the Hydra app call."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annlab.config.schema import Config, flatten, to_dict
from annlab.data.split import Splits
from annlab.errors import AnnlabError
from annlab.io import atomic_file, write_json

MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
RUN_FILE = "run.json"
SUMMARY_FILE = "summary.txt"
META_FILE = "meta.json"
LR_FINDER_FIGURE = "lr_finder.png"
STATE_ROOT = Path(".annlab") / "state"


@dataclass
class TrainOutcome:
    run_id: str | None
    history: dict[str, list[float]]
    seconds: float
    objective: float | None
    resumed_from_epoch: int = 0


def config_fingerprint(cfg: Config) -> str:
    """Same config, same fingerprint: where an interrupted training keeps its state."""
    tree = to_dict(cfg)
    tree.pop("tracking", None)
    return hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()[:16]


def model_summary(model) -> str:
    """Layer names, output shapes, parameter counts, then every weight's shape.

    Keras sizes the table to the terminal (`COLUMNS`, else the tty, else 80 columns) and cuts
    what does not fit: in a narrow terminal or a DVC log the "Param #" column and the right
    border were lost. The terminal is declared wide while Keras prints, so the table always has
    Keras' own full width (88 columns, 108 with "Connected to") wherever it was written.
    """
    import os

    lines: list[str] = []
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "200"  # rich and shutil.get_terminal_size both read it
    try:
        model.summary(print_fn=lambda text, **_: lines.append(text.rstrip("\n")))
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved
    weights = [f"  {w.path}: {tuple(w.shape)}" for w in model.weights]
    return "\n".join([*lines, "", "Weights (get_weights shapes):", *weights]) + "\n"


def write_history(path: Path, history: dict[str, list[float]]) -> None:
    """Per-epoch metrics, one row per epoch (0-based `epoch`, as Keras' CSVLogger writes)."""
    keys = ["epoch", *[k for k in history if k != "epoch"]]
    n = len(history.get("loss") or next(iter(history.values()), []))
    epochs = history.get("epoch") or [float(i) for i in range(n)]
    with atomic_file(path) as handle:
        handle.write(",".join(keys) + "\n")
        for i in range(n):
            values = [str(int(epochs[i]))] + [repr(history[k][i]) for k in keys[1:]]
            handle.write(",".join(values) + "\n")


def model_meta(cfg: Config, splits: Splits) -> dict[str, Any]:
    """What a user of the saved model needs besides the weights: the task, feature and class
    names, and how raw feature rows map to the model's inputs and outputs."""
    from annlab.models.build import has_aux_output, uses_two_inputs

    meta = splits.meta.to_dict()
    meta.pop("extra", None)
    return {
        **meta,
        "model": cfg.model.name,
        "two_inputs": uses_two_inputs(cfg),
        "wide_features": cfg.model.wide_features,
        "deep_features": cfg.model.deep_features,
        "aux_output": has_aux_output(cfg),
        "experiment_name": cfg.experiment_name,
    }


def objective_value(cfg: Config, history: dict[str, list[float]]) -> float | None:
    """The objective at the end of training (the best epoch if early stopping restored it)."""
    values = history.get(cfg.objective.metric)
    if not values:
        return None
    es = cfg.training.early_stopping
    if es.enabled and es.restore_best_weights:
        return max(values) if cfg.objective.direction == "maximize" else min(values)
    return values[-1]


def train_and_track(
    cfg: Config,
    splits: Splits,
    out_dir: Path,
    *,
    extra_tags: dict[str, str] | None = None,
    parent_run_id: str | None = None,
    callbacks: list | None = None,
) -> TrainOutcome:
    """Fit `cfg` on `splits`, write the model and history to `out_dir`, log it all to MLflow.

    The MLflow run is created in the background once training starts (`DeferredRun`), and
    always ends: FINISHED, FAILED with the reason, or KILLED on SIGINT / SIGTERM. State for
    resuming lives in `.annlab/state/<config fingerprint>/`: kept when training is
    interrupted, removed when it ends any other way.
    """
    from annlab.signals import interrupts_as_exceptions
    from annlab.tracking import lineage, store

    deferred = None
    uri = None
    if cfg.tracking.enabled:
        from annlab.tracking.deferred import DeferredRun

        uri = store.check_reachable(cfg.tracking)  # an unreachable server fails before training
        tags = {
            **lineage.git_tags(),
            **lineage.dvc_lock_tags(),
            **(extra_tags or {}),
            "annlab.data.digest": str(splits.meta.extra.get("digest", splits.digest())),
            "annlab.dataset": splits.meta.name,
            "annlab.model": cfg.model.name,
        }
        deferred = DeferredRun(
            cfg.tracking,
            cfg.experiment_name,
            tags,
            flatten(to_dict(cfg)),
            run_name=cfg.tracking.run_name,
            parent_run_id=parent_run_id,
            on_created=_background_setup(cfg, splits),
        )
    from annlab.training.setup import configure_tensorflow

    configure_tensorflow(cfg.training, cfg.seed)
    state_dir = STATE_ROOT / config_fingerprint(cfg)
    try:
        with interrupts_as_exceptions():
            outcome = _train(cfg, splits, out_dir, deferred, uri, state_dir, callbacks)
    except KeyboardInterrupt:
        if deferred is not None:
            deferred.end("KILLED", "interrupted by a signal")
        raise  # keep the state: rerunning resumes from the last completed epoch
    except BaseException as err:
        if deferred is not None:
            reason = str(err) if isinstance(err, AnnlabError) else f"{type(err).__name__}: {err}"
            deferred.end("FAILED", reason)
        shutil.rmtree(state_dir, ignore_errors=True)
        raise
    shutil.rmtree(state_dir, ignore_errors=True)
    return outcome


def _background_setup(cfg: Config, splits: Splits):
    """Work for the run-creating thread: the training data as an MLflow input."""

    def log_dataset(client, run_id: str) -> None:
        import warnings

        import mlflow
        from mlflow.entities import DatasetInput, InputTag

        X, y = splits.train
        with warnings.catch_warnings():  # "source can be interpreted in multiple ways"
            warnings.simplefilter("ignore")
            dataset = mlflow.data.from_numpy(
                X, targets=y, name=splits.meta.name, source=splits.meta.source or splits.meta.name
            )
        entity = DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", "training")])
        client.log_inputs(run_id, datasets=[entity])

    return log_dataset


def _train(
    cfg: Config,
    splits: Splits,
    out_dir: Path,
    deferred,
    uri: str | None,
    state_dir: Path,
    extra_callbacks: list | None = None,
) -> TrainOutcome:
    from annlab.training.fit import EPOCHS_FILE, fit, read_epochs

    callbacks = list(extra_callbacks or [])  # e.g. Optuna's pruning callback in a search
    if deferred is not None:
        callbacks.append(deferred.keras_callback(previous=read_epochs(state_dir / EPOCHS_FILE)))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tb_dir = Path(cfg.training.tensorboard.log_dir) / f"{cfg.experiment_name}-{stamp}"
    uses_state = cfg.model.name != "perceptron"
    result = fit(
        cfg,
        splits,
        out_dir,
        callbacks=callbacks,
        state_dir=state_dir if uses_state else None,
        tensorboard_dir=tb_dir,
    )
    result.model.save(out_dir / MODEL_FILE)
    write_history(out_dir / HISTORY_FILE, result.history)
    meta = model_meta(cfg, splits)
    write_json(out_dir / META_FILE, meta)
    summary = model_summary(result.model)
    (out_dir / SUMMARY_FILE).write_text(summary)
    if result.lr_finder is not None:
        from annlab.training.lr_finder import plot_lr_finder

        plot_lr_finder(result.lr_finder, out_dir / LR_FINDER_FIGURE)
    objective = objective_value(cfg, result.history)
    run_id = None
    if deferred is not None:
        import mlflow

        from annlab.tracking.store import retry_locked

        run_id = deferred.wait()
        retry_locked(lambda: mlflow.start_run(run_id=run_id))  # the run, now in this thread
        _log_outputs(cfg, result, splits, summary, out_dir, objective, tb_dir, meta)
        deferred.end("FINISHED")
    write_json(
        out_dir / RUN_FILE,
        {
            "run_id": run_id,
            "experiment_name": cfg.experiment_name,
            "tracking_uri": uri,
            "objective": {"metric": cfg.objective.metric, "value": objective},
        },
    )
    return TrainOutcome(run_id, result.history, result.seconds, objective, result.initial_epoch)


def _log_outputs(
    cfg: Config,
    result,
    splits: Splits,
    summary: str,
    out_dir: Path,
    objective: float | None,
    tb_dir: Path,
    meta: dict[str, Any],
) -> None:
    import mlflow

    from annlab.models.build import model_inputs
    from annlab.tracking import runs
    from annlab.tracking.models import log_keras_model

    metrics = {
        "train_seconds": result.seconds,
        "epochs_run": result.epochs_run,
        "replicas_in_sync": result.replicas,
    }
    if objective is not None:
        metrics[f"objective_{cfg.objective.metric}"] = objective
    if result.lr_finder is not None:
        metrics["lr_finder_suggested_rate"] = result.lr_finder.suggested_rate
        mlflow.log_artifact(str(out_dir / LR_FINDER_FIGURE), artifact_path="figures")
    runs.log_metrics(metrics)
    mlflow.log_dict(to_dict(cfg), "config/resolved_config.yaml")
    mlflow.log_text(summary, "model_summary.txt")
    mlflow.log_artifact(str(out_dir / HISTORY_FILE))
    if result.initial_epoch:
        runs.set_tags({"annlab.resumed_from_epoch": str(result.initial_epoch)})
    if cfg.training.tensorboard.enabled:
        runs.set_tags({"annlab.tensorboard_logdir": str(tb_dir.resolve())})
    if cfg.tracking.log_model:
        info = log_keras_model(result.model, model_inputs(cfg, splits.train[0]), metadata=meta)
        runs.set_tags({"annlab.model_uri": info.model_uri})
