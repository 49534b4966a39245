"""Which MLflow store to use, and failing fast when it cannot be reached."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

from annlab.config.schema import TrackingConfig
from annlab.errors import AnnlabError

T = TypeVar("T")
DEFAULT_URI = "sqlite:///mlflow.db"
# An unreachable server should fail within seconds, not after MLflow's minutes of retries.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def tracking_uri(cfg: TrackingConfig) -> str:
    """Config, then `MLFLOW_TRACKING_URI`, then MLflow's default sqlite store in the project."""
    return cfg.uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def configure(cfg: TrackingConfig) -> str:
    import mlflow

    uri = tracking_uri(cfg)
    if uri.startswith(("http://", "https://")):
        check_server(uri)
    mlflow.set_tracking_uri(uri)
    return uri


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
            transient = ("locked" in text or "already exists" in text or "unique constraint" in text
                         or "busy" in text)
            if not transient or attempt == attempts - 1:
                raise
            time.sleep(wait)
            wait = min(wait * 2, 2.0)
    raise AssertionError("unreachable")


def ensure_experiment(name: str) -> str:
    """Create the experiment if needed (safe when several processes race to create it)."""
    import mlflow

    def get_or_create() -> str:
        found = mlflow.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        return mlflow.create_experiment(name)

    return retry_locked(get_or_create)
