"""An MLflow run created in the background while the model trains.

Importing MLflow, opening its store, creating the run and logging the params cost seconds of
mostly-Python CPU work. Done before training they add straight to its wall time; started
when training starts, they run while TensorFlow computes with the GIL released, so tracking
costs a training almost nothing. Epoch metrics that arrive before the run exists are kept and
logged once it does. However the training ends, the run ends: FINISHED, FAILED with the
reason, or KILLED on a signal.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from annlab.config.schema import TrackingConfig
from annlab.tracking import tags

CHUNK = 100  # MLflow's log_batch takes at most 100 params and 1,000 metrics per call


class DeferredRun:
    def __init__(
        self,
        tracking: TrackingConfig,
        experiment_name: str,
        tags: dict[str, str],
        params: dict[str, Any],
        run_name: str | None = None,
        parent_run_id: str | None = None,
        on_created: Callable[[Any, str], None] | None = None,
    ) -> None:
        self.tracking = tracking
        self.experiment_name = experiment_name
        self.tags = dict(tags)
        self.params = params
        self.run_name = run_name
        self.parent_run_id = parent_run_id
        self.on_created = on_created  # more logging in the background (dataset inputs, ...)
        self._thread: threading.Thread | None = None
        self._run_id: str | None = None
        self._error: BaseException | None = None
        self._pending: list[tuple[int, dict[str, float]]] = []
        self._lock = threading.Lock()

    # -- creating the run -------------------------------------------------------------------
    def start(self) -> None:
        """Begin creating the run in a background thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._create_safely, name="mlflow-run", daemon=True)
            self._thread.start()

    def _create_safely(self) -> None:
        try:
            self._create()
        except BaseException as err:  # re-raised in the training thread by wait()
            self._error = err

    def _create(self) -> None:
        import mlflow
        from mlflow.entities import Param
        from mlflow.tracking.context.registry import resolve_tags

        from annlab.tracking.store import configure, ensure_experiment, retry_locked

        configure(self.tracking)  # importing MLflow and opening the store: here, off the clock
        client = mlflow.MlflowClient()
        experiment_id = ensure_experiment(self.experiment_name)
        tags = dict(self.tags)
        if self.parent_run_id:
            tags["mlflow.parentRunId"] = self.parent_run_id
        run = retry_locked(
            lambda: client.create_run(experiment_id, tags=resolve_tags(tags), run_name=self.run_name)
        )
        run_id = run.info.run_id
        params = [Param(k, ("null" if v is None else str(v))[:6000]) for k, v in self.params.items()]
        for i in range(0, len(params), CHUNK):
            chunk = params[i : i + CHUNK]
            retry_locked(lambda chunk=chunk: client.log_batch(run_id, params=chunk))
        if self.on_created is not None:
            self.on_created(client, run_id)
        with self._lock:
            self._run_id = run_id
        self._flush(client)

    def wait(self) -> str:
        """The run id, once created (creating it now if training never started)."""
        self.start()
        assert self._thread is not None
        self._thread.join()
        if self._error is not None:
            raise self._error
        import mlflow

        self._flush(mlflow.MlflowClient())
        assert self._run_id is not None
        return self._run_id

    # -- epoch metrics ------------------------------------------------------------------------
    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        with self._lock:
            self._pending.append((epoch, metrics))
            ready = self._run_id is not None
        if ready:
            import mlflow

            self._flush(mlflow.MlflowClient())

    def _flush(self, client) -> None:
        from mlflow.entities import Metric

        from annlab.tracking.store import retry_locked

        with self._lock:
            pending, self._pending = self._pending, []
            run_id = self._run_id
        if not pending or run_id is None:
            return
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, epoch) for epoch, values in pending for k, v in values.items()]
        for i in range(0, len(metrics), 1000):
            chunk = metrics[i : i + 1000]
            retry_locked(lambda chunk=chunk: client.log_batch(run_id, metrics=chunk))

    # -- ending ---------------------------------------------------------------------------------
    def end(self, status: str, reason: str | None = None) -> None:
        """End the run with `status` if it exists or is being created; never raises."""
        if self._thread is None:
            return
        import contextlib

        with contextlib.suppress(BaseException):
            self._thread.join()
            if self._run_id is None:
                return
            import mlflow

            from annlab.tracking.store import retry_locked

            client = mlflow.MlflowClient()
            self._flush(client)
            if reason:
                client.set_tag(self._run_id, tags.FAILURE_REASON, reason[:5000])
            active = mlflow.active_run()
            if active is not None and active.info.run_id == self._run_id:
                retry_locked(lambda: mlflow.end_run(status=status))
            else:
                retry_locked(lambda: client.set_terminated(self._run_id, status))

    def keras_callback(self, previous: dict[str, list[float]] | None = None):
        """Starts the run with training and hands it each epoch's metrics; on a resumed
        training it also logs the `previous` epochs that will not run again."""
        import keras

        deferred = self

        class MlflowRunCallback(keras.callbacks.Callback):
            """Keras numbers epochs absolutely: after a resume the first epoch to begin is the
            one after the last completed; the `previous` epochs before it are logged first."""

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
                        deferred.log_epoch(epoch, values)

            def on_train_begin(self, logs=None):
                deferred.start()

            def on_epoch_begin(self, epoch, logs=None):
                self.log_previous(before=epoch)

            def on_epoch_end(self, epoch, logs=None):
                deferred.log_epoch(epoch, {k: float(v) for k, v in (logs or {}).items()})

            def on_train_end(self, logs=None):
                self.log_previous(before=None)  # no epoch was left to run

        return MlflowRunCallback()
