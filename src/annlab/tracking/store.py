"""Which MLflow store to use, and failing fast when it cannot be reached."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from annlab.config.schema import TrackingConfig
from annlab.errors import AnnlabError

T = TypeVar("T")
DEFAULT_URI = "sqlite:///mlflow.db"
SQLITE_PREFIX = "sqlite:///"
# An unreachable server should fail within seconds, not after MLflow's minutes of retries.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def tracking_uri(cfg: TrackingConfig) -> str:
    """Config, then `MLFLOW_TRACKING_URI`, then MLflow's default sqlite store in the project.

    A relative sqlite path is anchored at the project root when a queued DVC experiment runs
    in a temp copy (`.dvc/tmp/exps/...`): there it would land in the copy and be deleted.
    """
    uri = cfg.uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    root = dvc_executor_root()
    if root is not None and uri.startswith(SQLITE_PREFIX):
        path = uri[len(SQLITE_PREFIX) :]
        if path and not path.startswith("/"):
            return f"{SQLITE_PREFIX}{root / path}"
    return uri


def dvc_executor_root() -> Path | None:
    """The original project root while DVC runs an experiment in a temp copy, else None.

    DVC's temp executor sets `DVC_ROOT` to the repo the experiment was queued from (plain
    `dvc repro` and `dvc exp run` set it to the working directory itself).
    """
    root = os.environ.get("DVC_ROOT")
    if not root:
        return None
    root_path = Path(root).resolve()
    return None if root_path == Path.cwd().resolve() else root_path


def check_reachable(cfg: TrackingConfig) -> str:
    """The tracking URI, after checking a tracking server answers (without importing MLflow)."""
    uri = tracking_uri(cfg)
    if uri.startswith(("http://", "https://")):
        check_server(uri)
    return uri


def configure(cfg: TrackingConfig) -> str:
    import logging

    import mlflow

    # "Creating initial MLflow database tables..." is MLflow's business, not the user's.
    for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)

    uri = tracking_uri(cfg)
    if uri.startswith(("http://", "https://")):
        check_server(uri)
    mlflow.set_tracking_uri(uri)
    if uri.startswith(SQLITE_PREFIX):
        create_sqlite_store_once(uri)
    return uri


def create_sqlite_store_once(uri: str) -> None:
    """Create (or migrate) a sqlite store's schema one process at a time.

    Processes started together on a fresh store (`dvc queue start -j 2`, parallel sweep jobs)
    otherwise race on MLflow's schema migration and one fails. The lock is a `flock` on the
    database file itself, which sqlite's own (fcntl) locks do not see.
    """
    import fcntl

    import mlflow

    path = Path(uri[len(SQLITE_PREFIX) :].split("?", 1)[0])
    if not path.name or str(path) == ":memory:":
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            retry_locked(lambda: mlflow.MlflowClient(uri).search_experiments(max_results=1))
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_server(uri: str, timeout: float = 3.0) -> None:
    import requests

    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=timeout).raise_for_status()
    except requests.RequestException as err:
        reason = type(err).__name__
        raise AnnlabError(
            f"MLflow tracking server {uri} is unreachable ({reason}): start it (`mlflow server "
            "--host 127.0.0.1`), or unset MLFLOW_TRACKING_URI / `tracking.uri` to use the local "
            "sqlite store."
        ) from None


def retry_locked(action: Callable[[], T], attempts: int = 12, first_wait: float = 0.05) -> T:
    """Retry a store call that lost a race on sqlite ("database is locked", schema creation)."""
    wait = first_wait
    for attempt in range(attempts):
        try:
            return action()
        except Exception as err:  # sqlalchemy / MlflowException wrap the sqlite error
            text = str(err).lower()
            transient = (
                "locked" in text or "already exists" in text or "unique constraint" in text or "busy" in text
            )
            if not transient or attempt == attempts - 1:
                raise
            time.sleep(wait)
            wait = min(wait * 2, 2.0)
    raise AssertionError("unreachable")


# MLflow 3 marks what kind of work an experiment holds; the UI's experiment page and MLflow's
# own tools read it. annlab's experiments are model training: the runs table, not GenAI traces.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"


def ensure_experiment(name: str) -> str:
    """Create the experiment if needed (safe when several processes race to create it),
    marked as a model-training experiment; an existing one without a kind gets the mark."""
    import mlflow

    kind = {EXPERIMENT_KIND_TAG: TRAINING_KIND}

    def get_or_create() -> str:
        found = mlflow.get_experiment_by_name(name)
        if found is not None:
            if EXPERIMENT_KIND_TAG not in found.tags:
                client = mlflow.MlflowClient()
                client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, TRAINING_KIND)
            return found.experiment_id
        root = dvc_executor_root()
        uri = mlflow.get_tracking_uri()
        if root is not None and uri.startswith(SQLITE_PREFIX):
            # MLflow puts a new experiment's artifacts under ./mlruns of the working directory,
            # here the DVC temp copy: create it with the project root's mlruns/ instead.
            from mlflow.entities import ExperimentTag
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            tags = [ExperimentTag(key, value) for key, value in kind.items()]
            return SqlAlchemyStore(uri, str(root / "mlruns")).create_experiment(name, tags=tags)
        return mlflow.create_experiment(name, tags=kind)

    return retry_locked(get_or_create)
