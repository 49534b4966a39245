"""Train one configuration and record it in MLflow: the code both the DVC stage and the Hydra
app call. The training itself is `annlab.training`; this module wraps it in a run that always
ends (FINISHED, FAILED with the reason, KILLED on a signal)."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annlab.config.schema import Config, flatten, to_dict
from annlab.data.split import Splits
from annlab.errors import AnnlabError
from annlab.io import write_json
from annlab.tracking import tags
from annlab.training.outputs import (
    HISTORY_FILE,
    LR_FINDER_FIGURE,
    MODEL_FILE,
    RUN_FILE,
    STATE_ROOT,
    config_fingerprint,
    save_training_outputs,
    write_test_outputs,
)


@dataclass
class TrainOutcome:
    run_id: str | None
    history: dict[str, list[float]]
    seconds: float
    objective: float | None
    resumed_from_epoch: int = 0
    kept_epoch: int = 0  # the epoch whose weights the saved model holds (0-based)
    cv: Any = None  # annlab.training.cv.CVResult with training.cv_folds


def train_and_track(
    cfg: Config,
    splits: Splits,
    out_dir: Path,
    *,
    extra_tags: dict[str, str] | None = None,
    parent_run_id: str | None = None,
    callbacks: list | None = None,
    cv_only: bool = False,
    objective_override: float | None = None,
    evaluate: Callable[[Path], Path | None] | None = None,
) -> TrainOutcome:
    """Fit `cfg` on `splits`, write the model and history to `out_dir`, log it all to MLflow.

    `evaluate(model_dir)` (annlab-train's evaluation) runs once the test outputs are written and
    returns the reports folder it wrote (None: nothing to log), whose scores the run logs before
    it ends: the helper has MLflow loaded already, this process never does.

    With `training.cv_folds` = K the configuration is first cross-validated on the training
    split: each fold is a child run of this run (`fold_<score>` of its held-out fold), this run
    logs `cv_<score>_mean` / `_std`, and its objective is the mean over the held-out folds. With
    `cv_only` (a trial of a cross-validated search) that is all; otherwise the model is then
    trained on the whole training split as usual. `objective_override` is recorded as the
    objective instead of the model's own (the refit of a search: its config's CV score).

    The MLflow run is opened and logged from annlab's MLflow helper process (`TrackedRun`),
    forked before TensorFlow is imported, and always ends: FINISHED, FAILED with the reason, or
    KILLED on SIGINT / SIGTERM. State for
    resuming lives in `.annlab/state/<config fingerprint>/`: kept when training is
    interrupted, removed when it ends any other way.
    """
    from annlab.signals import interrupts_as_exceptions
    from annlab.tracking import lineage, store

    tracked = None
    uri = None
    if cfg.tracking.enabled:
        from annlab.tracking.run_log import TrackedRun

        uri = store.check_reachable(cfg.tracking)  # an unreachable server fails before training
        run_tags = {
            **lineage.git_tags(),
            **lineage.dvc_lock_tags(),
            **(extra_tags or {}),
            tags.DATA_DIGEST: splits.lineage_digest(),
            tags.DATASET: splits.meta.name,
            tags.MODEL: cfg.model.name,
        }
        X, y = splits.train
        dataset = (X, y, splits.meta.name, splits.meta.source or splits.meta.name)
        # forks the MLflow helper now, so that its work overlaps TensorFlow's import
        tracked = TrackedRun(
            cfg.tracking,
            cfg.experiment_name,
            run_tags,
            flatten(to_dict(cfg)),
            run_name=cfg.tracking.run_name,
            parent_run_id=parent_run_id,
            dataset=dataset,
        )
    from annlab.training.setup import configure_tensorflow

    configure_tensorflow(cfg.training, cfg.seed)
    with _resume_state(cfg) as state_dir:
        try:
            with interrupts_as_exceptions():
                outcome = _train(
                    cfg,
                    splits,
                    out_dir,
                    tracked,
                    uri,
                    state_dir,
                    callbacks,
                    cv_only,
                    objective_override,
                    evaluate,
                )
        except KeyboardInterrupt:
            if tracked is not None:
                tracked.end("KILLED", "interrupted by a signal")
            raise  # the state is kept: rerunning resumes from the last completed epoch
        except BaseException as err:
            if tracked is not None:
                reason = str(err) if isinstance(err, AnnlabError) else f"{type(err).__name__}: {err}"
                tracked.end("FAILED", reason)
            raise
    return outcome


@contextlib.contextmanager
def _resume_state(cfg: Config) -> Iterator[Path | None]:
    """The folder from which an interrupted training of `cfg` resumes, owned by one process at
    a time, and removed by its owner when the training ends any way but interrupted. A second
    process training the same configuration meanwhile (two terminals, a sweep that draws the
    same settings twice) gets None: it keeps no backups, and starts over if interrupted, rather
    than writing its epochs into the first one's."""
    from annlab.locks import file_lock

    state_dir = STATE_ROOT / config_fingerprint(cfg)
    with file_lock(state_dir.with_suffix(".lock"), wait=False) as owned:
        if not owned:
            print(
                f"train: another process is training this configuration and holds {state_dir}; "
                "this training keeps no resume state (if interrupted, it starts over)",
                flush=True,
            )
            yield None
            return
        interrupted = False
        try:
            yield state_dir
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            if not interrupted:
                shutil.rmtree(state_dir, ignore_errors=True)


def _train(
    cfg: Config,
    splits: Splits,
    out_dir: Path,
    tracked,
    uri: str | None,
    state_dir: Path | None,
    extra_callbacks: list | None = None,
    cv_only: bool = False,
    objective_override: float | None = None,
    evaluate: Callable[[Path], Path | None] | None = None,
) -> TrainOutcome:
    from annlab.training.callbacks import tensorboard_run_dir
    from annlab.training.fit import EPOCHS_FILE, fit, read_epochs

    cv = None
    if cfg.training.cv_folds:
        # the trials of a search reuse the fold processes; a single run ends them at once
        cv = _cross_validate(cfg, splits, out_dir, tracked, keep_workers=cv_only)
        if cv_only:
            return _finish_cv_only(cfg, cv, out_dir, tracked, uri)
    callbacks = list(extra_callbacks or [])  # e.g. Optuna's pruning callback in a search
    if tracked is not None:
        previous = read_epochs(state_dir / EPOCHS_FILE) if state_dir is not None else None
        callbacks.append(tracked.keras_callback(previous=previous))
    tb_dir = tensorboard_run_dir(cfg.training, cfg.experiment_name)
    uses_state = cfg.model.name != "perceptron" and state_dir is not None
    result = fit(
        cfg,
        splits,
        out_dir,
        callbacks=callbacks,
        state_dir=state_dir if uses_state else None,
        tensorboard_dir=tb_dir,
    )
    summary, meta, objective = save_training_outputs(cfg, splits, result, out_dir)
    if cv is not None:
        objective = cv.objective(cfg.objective.metric)  # the configuration's CV score
    if objective_override is not None:
        objective = objective_override
    run_id = None
    if tracked is not None:
        from annlab.tracking.run_log import log_training

        log = training_log(cfg, result, splits, summary, out_dir, objective, tb_dir, meta)
        if cv is not None:
            log.metrics.update(_cv_metrics(cfg, cv, with_objective=False))  # the objective is in
        tracked.post(log_training, log)  # logs in the helper while this process goes on
    write_test_outputs(cfg, splits, result.model, out_dir)
    if evaluate is not None:
        reports = evaluate(out_dir)
        if tracked is not None and reports is not None:
            from annlab.tracking.runs import log_evaluation_here

            tracked.post(log_evaluation_here, str(reports))
    if tracked is not None:
        run_id = tracked.run_id()  # once all is logged (the files above are still in place)
        tracked.end("FINISHED")
    objective_info: dict[str, Any] = {"metric": cfg.objective.metric, "value": objective}
    objective_info["epoch"] = result.kept_epoch
    if cv is not None:
        objective_info["source"] = f"mean of {len(cv.folds)} held-out folds"
    elif objective_override is not None:
        objective_info["source"] = "given (the cross-validated score of this configuration)"
    write_json(
        out_dir / RUN_FILE,
        {
            "run_id": run_id,
            "experiment_name": cfg.experiment_name,
            "tracking_uri": uri,
            "objective": objective_info,
        },
    )
    return TrainOutcome(
        run_id, result.history, result.seconds, objective, result.initial_epoch, result.kept_epoch, cv
    )


CV_FILE = "cv.json"


def _cross_validate(cfg: Config, splits: Splits, out_dir: Path, tracked, keep_workers: bool):
    """The K folds (annlab.training.cv), each logged as a child run of this run."""
    from annlab.training.cv import cross_validate

    cv = cross_validate(cfg, splits, log=lambda line: print(line, flush=True), keep_workers=keep_workers)
    write_json(out_dir / CV_FILE, _cv_details(cfg, cv))
    if tracked is not None:
        tracked.post(_log_folds, cfg.model.name, cv, splits.meta.name)
    return cv


def _cv_details(cfg: Config, cv) -> dict[str, Any]:
    return {
        "folds": cfg.training.cv_folds,
        "jobs": cv.jobs,
        "seconds": cv.seconds,
        "objective": {"metric": cfg.objective.metric, "value": cv.objective(cfg.objective.metric)},
        "summary": cv.summary(),
        "per_fold": [
            {
                "fold": f.index,
                "train_rows": f.train_rows,
                "held_out_rows": f.held_out_rows,
                "scores": f.scores,
                "epochs": f.epochs_run,
                "kept_epoch": f.kept_epoch,
                "seconds": f.seconds,
            }
            for f in cv.folds
        ],
    }


def _cv_metrics(cfg: Config, cv, with_objective: bool = True) -> dict[str, float]:
    from annlab.objective import objective_key

    metrics = {**cv.summary(), "cv_folds": len(cv.folds), "cv_jobs": cv.jobs, "cv_seconds": cv.seconds}
    if with_objective:
        metrics[objective_key(cfg.objective.metric)] = cv.objective(cfg.objective.metric)
    return metrics


def _log_folds(model_name: str, cv, dataset_name: str) -> None:
    """One child run of the active run per fold: its held-out scores (`fold_<name>`), its
    per-epoch metrics, and the fold's index as a tag (runs in the MLflow helper)."""
    import mlflow
    from mlflow.entities import Metric, Param

    from annlab.objective import fold_key
    from annlab.tracking.store import retry_locked

    run_id = mlflow.active_run().info.run_id
    client = mlflow.MlflowClient()
    experiment_id = retry_locked(lambda: client.get_run(run_id)).info.experiment_id
    now = int(time.time() * 1000)
    for fold in cv.folds:
        fold_tags = {
            "mlflow.parentRunId": run_id,
            tags.CV_FOLD: str(fold.index),
            tags.CV_FOLDS: str(len(cv.folds)),
            tags.DATASET: dataset_name,
            tags.MODEL: model_name,
        }
        child = retry_locked(
            lambda fold_tags=fold_tags, fold=fold: client.create_run(
                experiment_id, tags=fold_tags, run_name=f"fold-{fold.index}"
            )
        )
        child_id = child.info.run_id
        metrics = [Metric(fold_key(k), v, now, 0) for k, v in fold.scores.items()]
        metrics += [
            Metric("train_seconds", fold.seconds, now, 0),
            Metric("epochs_run", fold.epochs_run, now, 0),
            Metric("kept_epoch", fold.kept_epoch, now, 0),
        ]
        epochs = [int(e) for e in fold.history.get("epoch", [])]
        for key, values in fold.history.items():
            if key != "epoch":
                metrics += [Metric(key, float(v), now, e) for e, v in zip(epochs, values, strict=False)]
        params = [
            Param("cv.fold", str(fold.index)),
            Param("cv.folds", str(len(cv.folds))),
            Param("cv.train_rows", str(fold.train_rows)),
            Param("cv.held_out_rows", str(fold.held_out_rows)),
        ]
        retry_locked(lambda child_id=child_id, params=params: client.log_batch(child_id, params=params))
        for i in range(0, len(metrics), 1000):
            chunk = metrics[i : i + 1000]
            retry_locked(lambda child_id=child_id, chunk=chunk: client.log_batch(child_id, metrics=chunk))
        retry_locked(lambda child_id=child_id: client.set_terminated(child_id, "FINISHED"))


def _finish_cv_only(cfg: Config, cv, out_dir: Path, tracked, uri: str | None) -> TrainOutcome:
    """A trial of a cross-validated search: its score is the CV mean; no model of its own."""
    objective = cv.objective(cfg.objective.metric)
    run_id = None
    if tracked is not None:
        from annlab.tracking.run_log import TrainingLog, log_training

        metrics = {**_cv_metrics(cfg, cv), "train_seconds": cv.seconds}
        tracked.post(
            log_training, TrainingLog(metrics, to_dict(cfg), artifacts=[(str(out_dir / CV_FILE), "cv")])
        )
        run_id = tracked.run_id()
        tracked.end("FINISHED")
    write_json(
        out_dir / RUN_FILE,
        {
            "run_id": run_id,
            "experiment_name": cfg.experiment_name,
            "tracking_uri": uri,
            "objective": {
                "metric": cfg.objective.metric,
                "value": objective,
                "source": f"mean of {len(cv.folds)} held-out folds",
            },
            "cv_only": True,
        },
    )
    return TrainOutcome(run_id, {}, cv.seconds, objective, cv=cv)


def training_log(
    cfg: Config,
    result,
    splits: Splits,
    summary: str,
    out_dir: Path,
    objective: float | None,
    tb_dir: Path,
    meta: dict[str, Any],
):
    """What the run records of a finished training; the model goes as its saved file, with the
    model's outputs on a few training rows for the signature (computed here, with TensorFlow)."""
    from annlab.models.build import model_inputs
    from annlab.objective import objective_key
    from annlab.tracking.models import example_rows
    from annlab.tracking.run_log import ModelFile, TrainingLog

    metrics = {
        "train_seconds": result.seconds,
        "epochs_run": result.epochs_run,
        "kept_epoch": result.kept_epoch,
        "replicas_in_sync": result.replicas,
    }
    if objective is not None:
        metrics[objective_key(cfg.objective.metric)] = objective
    log = TrainingLog(metrics, to_dict(cfg), summary, [(str(out_dir / HISTORY_FILE), None)])
    if result.lr_finder is not None:
        log.metrics["lr_finder_suggested_rate"] = result.lr_finder.suggested_rate
        log.artifacts.append((str(out_dir / LR_FINDER_FIGURE), "figures"))
    if result.initial_epoch:
        log.tags[tags.RESUMED_FROM_EPOCH] = str(result.initial_epoch)
    if cfg.training.tensorboard.enabled:
        log.tags[tags.TENSORBOARD_LOGDIR] = str(tb_dir.resolve())
    if cfg.tracking.log_model:
        example = example_rows(model_inputs(cfg, splits.train[0]))
        # one eager call (no graph to trace): only the outputs' names, shapes and types matter
        outputs = _as_numpy(result.model(example, training=False))
        log.model = ModelFile(str(out_dir / MODEL_FILE), example, outputs, meta)
    return log


def _as_numpy(outputs: Any) -> Any:
    import numpy as np

    if isinstance(outputs, dict):
        return {k: np.asarray(v) for k, v in outputs.items()}
    return np.asarray(outputs)
