"""The MLflow run of one training, logged from annlab's MLflow helper process.

Importing MLflow, opening its store, creating the run and logging params and the data set cost
seconds of single-threaded Python. A thread cannot hide them (the GIL), and during training both
cores are busy. So the training forks its MLflow helper (`MlflowHelper`) before it imports
TensorFlow: that work runs on the other core while TensorFlow imports, which keeps one core busy
and the other idle; the epochs, the outputs and the model file are then handed over as the
training produces them, and this process never imports MLflow. Where no helper can be forked
(macOS, a joblib or Ray worker) the same functions run here, one after the other.

The functions below run where MLflow lives; between calls they keep the run active there.
However the training ends, `TrackedRun.end` ends the run: FINISHED, FAILED with the reason, or
KILLED on a signal.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from annlab.config.schema import TrackingConfig
from annlab.tracking import tags
from annlab.tracking.helper import MlflowHelper
from annlab.tracking.store import retry_dataset_race, retry_locked

CHUNK = 100  # MLflow's log_batch takes at most 100 params per call
# The training data reach the helper through the fork (copy-on-write), not the pipe: tens of MB
# written to a pipe that the helper reads only once MLflow is imported would stall the training.
_INHERITED: dict[str, Any] = {}


@dataclass
class ModelFile:
    """A saved `.keras` model to log, with a few input rows and the model's outputs on them
    (for the signature), computed where TensorFlow is."""

    keras_file: str
    example: Any
    outputs: Any
    metadata: dict[str, Any]


@dataclass
class TrainingLog:
    """Everything a finished training adds to its run."""

    metrics: dict[str, float]
    config: dict[str, Any]
    summary: str | None = None
    artifacts: list[tuple[str, str | None]] = field(default_factory=list)  # (file, folder in the run)
    tags: dict[str, str] = field(default_factory=dict)
    model: ModelFile | None = None


# -- run where MLflow lives (the helper process) ---------------------------------------------


def open_run(
    experiment_name: str,
    run_tags: dict[str, str],
    params: dict[str, Any],
    run_name: str | None,
    parent_run_id: str | None,
) -> str:
    """Create the run (MLflow adds its own context tags: source, user, ...), log the params and
    the training data as an input, and keep the run active here."""
    import warnings

    import mlflow
    from mlflow.entities import Param

    from annlab.tracking.store import ensure_experiment

    experiment_id = ensure_experiment(experiment_name)
    run = retry_locked(
        lambda: mlflow.start_run(
            experiment_id=experiment_id, run_name=run_name, tags=run_tags, parent_run_id=parent_run_id
        )
    )
    run_id = run.info.run_id
    client = mlflow.MlflowClient()
    items = [Param(k, ("null" if v is None else str(v))[:6000]) for k, v in params.items()]
    for i in range(0, len(items), CHUNK):
        chunk = items[i : i + CHUNK]
        retry_locked(lambda chunk=chunk: client.log_batch(run_id, params=chunk))
    dataset = _INHERITED.pop("dataset", None)
    if dataset is not None:
        X, y, name, source = dataset
        with warnings.catch_warnings():  # "source can be interpreted in multiple ways"
            warnings.simplefilter("ignore")
            data = mlflow.data.from_numpy(X, targets=y, name=name, source=source)
        retry_dataset_race(lambda: mlflow.log_input(data, context="training"))
    return run_id


def current_run_id() -> str:
    import mlflow

    run = mlflow.active_run()
    assert run is not None, "no annlab run is open in this process"
    return run.info.run_id


def log_epoch(epoch: int, metrics: dict[str, float]) -> None:
    import mlflow

    retry_locked(lambda: mlflow.log_metrics(metrics, step=epoch))


def log_training(log: TrainingLog) -> None:
    """A finished training's metrics, config, summary, files, tags and model."""
    import mlflow

    from annlab.tracking.models import log_model_file

    retry_locked(lambda: mlflow.log_metrics({k: float(v) for k, v in log.metrics.items()}))
    mlflow.log_dict(log.config, "config/resolved_config.yaml")
    if log.summary is not None:
        mlflow.log_text(log.summary, "model_summary.txt")
    for path, folder in log.artifacts:
        mlflow.log_artifact(path, artifact_path=folder)
    run_tags = dict(log.tags)
    if log.model is not None:
        m = log.model
        run_tags[tags.MODEL_URI] = log_model_file(m.keras_file, m.example, m.outputs, m.metadata).model_uri
    if run_tags:
        retry_locked(lambda: mlflow.set_tags(run_tags))


def end_run(status: str, reason: str | None) -> None:
    import mlflow

    with contextlib.suppress(Exception):
        mlflow.flush_async_logging()
    if reason:
        with contextlib.suppress(Exception):
            mlflow.set_tag(tags.FAILURE_REASON, reason[:5000])
    if mlflow.active_run() is not None:
        retry_locked(lambda: mlflow.end_run(status=status))


# -- the training's side ---------------------------------------------------------------------


class TrackedRun:
    """The run of one training, opened in the helper at once (before TensorFlow is imported)."""

    def __init__(
        self,
        tracking: TrackingConfig,
        experiment_name: str,
        run_tags: dict[str, str],
        params: dict[str, Any],
        run_name: str | None = None,
        parent_run_id: str | None = None,
        dataset: tuple[Any, Any, str, str] | None = None,
    ) -> None:
        _INHERITED["dataset"] = dataset  # before the fork: the helper has it, and nothing to send
        self.helper = MlflowHelper(tracking)
        self._open = True
        try:
            self.helper.post(open_run, experiment_name, run_tags, params, run_name, parent_run_id)
        except BaseException:  # without a helper the run opens here: its error is this one
            self.helper.close()
            self._open = False
            raise

    def post(self, fn, *args: Any) -> None:
        self.helper.post(fn, *args)

    def run_id(self) -> str:
        """The run's id, once everything handed over so far is logged (errors raise here)."""
        return self.helper.call(current_run_id)

    def end(self, status: str, reason: str | None = None) -> None:
        """End the run with `status` and stop the helper; never raises (it runs on failures)."""
        if not self._open:
            return
        self._open = False
        with contextlib.suppress(BaseException):
            self.helper.call(end_run, status, reason)
        self.helper.close()
        _INHERITED.clear()

    def keras_callback(self, previous: dict[str, list[float]] | None = None):
        """Hands each epoch's metrics to the run; on a resumed training it first hands over the
        `previous` epochs that will not run again (Keras numbers epochs absolutely: the first
        epoch to begin is the one after the last completed)."""
        import keras

        run = self

        class MlflowRunCallback(keras.callbacks.Callback):
            def __init__(self) -> None:
                super().__init__()
                self.logged_previous = False

            def log_previous(self, before: int | None) -> None:
                if self.logged_previous:
                    return
                self.logged_previous = True
                epochs = [int(e) for e in (previous or {}).get("epoch", [])]
                for i, epoch in enumerate(epochs):
                    if before is None or epoch < before:
                        values = {k: v[i] for k, v in (previous or {}).items() if k != "epoch"}
                        run.post(log_epoch, epoch, values)

            def on_epoch_begin(self, epoch, logs=None):
                self.log_previous(before=epoch)

            def on_epoch_end(self, epoch, logs=None):
                run.post(log_epoch, epoch, {k: float(v) for k, v in (logs or {}).items()})

            def on_train_end(self, logs=None):
                self.log_previous(before=None)  # no epoch was left to run

        return MlflowRunCallback()
