"""Which MLflow store to use (sqlite, a tracking server, a PostgreSQL database), and failing
fast, in one line, when it cannot be reached."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from annlab.config.schema import TrackingConfig
from annlab.errors import AnnlabError

T = TypeVar("T")
DEFAULT_URI = "sqlite:///mlflow.db"
SQLITE_PREFIX = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql", "postgres")
DRIVER_SCHEME = "postgresql+psycopg"  # psycopg 3, installed with annlab, whatever SQLAlchemy's default
# An unreachable server should fail within seconds, not after MLflow's minutes of retries.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def tracking_uri(cfg: TrackingConfig) -> str:
    """Config, then `MLFLOW_TRACKING_URI`, then MLflow's default sqlite store in the project.

    A PostgreSQL URL names the psycopg 3 driver explicitly (`postgresql+psycopg://`).

    A relative sqlite path is anchored at the project root when a queued DVC experiment runs
    in a temp copy (`.dvc/tmp/exps/...`): there it would land in the copy and be deleted.
    """
    uri = cfg.uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    if is_postgres_url(uri):
        return sqlalchemy_url(uri)
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
    """The tracking URI, after checking a tracking server, or a PostgreSQL store, answers
    (without importing MLflow or TensorFlow). A database URL comes back with its password
    masked: the caller records it (run.json, the report)."""
    uri = tracking_uri(cfg)
    if uri.startswith(("http://", "https://")):
        check_server(uri)
        return uri
    if is_postgres_url(uri):
        check_database(uri)
        return redact(uri)
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
    import mlflow

    from annlab.locks import file_lock

    path = Path(uri[len(SQLITE_PREFIX) :].split("?", 1)[0])
    if not path.name or str(path) == ":memory:":
        return
    with file_lock(path):
        retry_locked(lambda: mlflow.MlflowClient(uri).search_experiments(max_results=1))


def check_server(uri: str, timeout: float = 3.0) -> None:
    """Fail in one line unless the server answers, and answers from its store: `/health` is
    static, so a cheap API call (one experiment) also catches a server whose database is down
    or refuses its password."""
    import requests

    base = uri.rstrip("/")
    try:
        requests.get(f"{base}/health", timeout=timeout).raise_for_status()
        answer = requests.get(
            f"{base}/api/2.0/mlflow/experiments/search",
            params={"max_results": 1},
            auth=_basic_auth(),
            timeout=timeout * 5,
        )
    except requests.RequestException as err:
        reason = type(err).__name__
        raise AnnlabError(
            f"MLflow tracking server {uri} is unreachable ({reason}): start it (`annlab server` or "
            "`mlflow server --host 127.0.0.1`), or unset MLFLOW_TRACKING_URI / `tracking.uri` to use "
            "the local sqlite store."
        ) from None
    if answer.status_code in (401, 403):
        raise AnnlabError(
            f"MLflow tracking server {uri} refused the request (HTTP {answer.status_code}): set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD."
        )
    if not answer.ok:
        raise AnnlabError(
            f"MLflow tracking server {uri} answers but cannot read its store (HTTP "
            f"{answer.status_code}: {_server_message(answer)}): check the server's database (is "
            "PostgreSQL running? its password?) and restart the server."
        )


def _basic_auth() -> tuple[str, str] | None:
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    return (user, password) if user and password else None


def _server_message(answer) -> str:
    """MLflow's error message, first line, shortened (SQLAlchemy's run to pages)."""
    try:
        text = str(answer.json().get("message", ""))
    except ValueError:
        text = answer.text
    first = (text.strip().splitlines() or ["no message"])[0]
    return first[:200]


# -- PostgreSQL stores ---------------------------------------------------------------------------------------


def is_postgres_url(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0].lower() in POSTGRES_SCHEMES


def sqlalchemy_url(url: str) -> str:
    """The URL for MLflow (SQLAlchemy): `postgresql://` names the psycopg 3 driver explicitly."""
    scheme, rest = url.split("://", 1)
    return f"{DRIVER_SCHEME}://{rest}" if "+" not in scheme else url


def libpq_url(url: str) -> str:
    """The URL for libpq / psycopg, which know no `+driver` in the scheme."""
    return "postgresql://" + url.split("://", 1)[1]


def describe(url: str) -> str:
    """Where a URL points, without its password: `127.0.0.1:5432/mlflow (user mlflow)`."""
    parts = urlsplit(libpq_url(url))
    user = f" (user {unquote(parts.username)})" if parts.username else ""
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}{user}"


def redact(url: str) -> str:
    """The URL with its password masked, for anything recorded or printed."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def check_database(url: str, timeout: int = 5) -> None:
    """Log in once, so a wrong password or a database that is down fails in one line, at once."""
    import psycopg

    try:
        with psycopg.connect(libpq_url(url), connect_timeout=timeout):
            pass
    except psycopg.Error as err:
        reason = _reason(err)
        raise AnnlabError(f"PostgreSQL at {describe(url)}: {reason}: {_fix(reason)}.") from None


def _reason(err: Exception) -> str:
    """libpq's reason, on one line: `password authentication failed for user "x"`."""
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    reason = first.rsplit(" failed: ", 1)[-1].replace("FATAL:", "").strip()
    return reason or type(err).__name__


def _fix(reason: str) -> str:
    text = reason.lower()
    if "password" in text or "authentication" in text or "role" in text:
        return "fix the user and password in the database URL"
    if "does not exist" in text:
        return "create the database (`createdb`) or fix its name in the URL"
    return "start PostgreSQL, or fix the host and port in the database URL"


def retry_locked(action: Callable[[], T], attempts: int = 12, first_wait: float = 0.05) -> T:
    """Retry a store call that met sqlite's "database is locked": another process was writing
    (parallel sweep jobs, a DVC queue). Any other error is raised at once."""
    # sqlalchemy / MlflowException wrap the sqlite error
    return _retry_on("database is locked", action, attempts, first_wait)


def _retry_on(marker: str, action: Callable[[], T], attempts: int, first_wait: float) -> T:
    """`action()`, again after a doubling wait (at most 2 s) while its error's text holds
    `marker`; any other error, or the last attempt's, is raised."""
    wait = first_wait
    for attempt in range(attempts):
        try:
            return action()
        except Exception as err:
            if marker not in str(err).lower() or attempt == attempts - 1:
                raise
            time.sleep(wait)
            wait = min(wait * 2, 2.0)
    raise AssertionError("unreachable")


DATASET_KEY = "dataset_pk"  # the datasets table's primary key in MLflow's SQL schema


def retry_dataset_race(action: Callable[[], T], attempts: int = 3) -> T:
    """Retry logging a run's data set that met a concurrent insert of the same one. Jobs that
    log one data set to one experiment at once (a parallel sweep on a PostgreSQL-backed server)
    can both find it absent and both insert it; the server answers the second with a unique-key
    violation on `dataset_pk` (seen in a Ray sweep here). By then the data set exists, and
    logging again links it to the run. Each attempt also waits out a locked sqlite store
    (`retry_locked`); any other error is raised at once."""
    return _retry_on(DATASET_KEY, lambda: retry_locked(action), attempts, first_wait=0.05)


# MLflow 3 marks what kind of work an experiment holds; the UI's experiment page and MLflow's
# own tools read it. annlab's experiments are model training: the runs table, not GenAI traces.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"


def ensure_experiment(name: str) -> str:
    """The experiment's id, creating it if needed, marked as a model-training experiment (an
    existing one without a kind gets the mark); when several processes race to create it, the
    others find the one that won."""
    import mlflow
    from mlflow.exceptions import MlflowException

    kind = {EXPERIMENT_KIND_TAG: TRAINING_KIND}

    def get_or_create() -> str:
        found = mlflow.get_experiment_by_name(name)
        if found is not None:
            if EXPERIMENT_KIND_TAG not in found.tags:
                client = mlflow.MlflowClient()
                client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, TRAINING_KIND)
            return found.experiment_id
        root = dvc_executor_root()
        location = None
        if root is not None and mlflow.get_tracking_uri().startswith(SQLITE_PREFIX):
            # MLflow puts a new experiment's artifacts under ./mlruns of the working directory,
            # here the DVC temp copy that is deleted afterwards: use the project root's mlruns/.
            location = str(root / "mlruns" / uuid.uuid4().hex)
        try:
            return mlflow.create_experiment(name, artifact_location=location, tags=kind)
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return mlflow.get_experiment_by_name(name).experiment_id  # created by another process

    return retry_locked(get_or_create)
