"""`annlab server`: an MLflow tracking server for a team or a cluster, on PostgreSQL.

One sqlite file serves one machine; many processes on many machines (a joblib or Ray sweep,
a team) need a tracking server with a database backend and proxied artifacts. Given a database
URL, the server uses it; given none, it creates (once) and starts a local PostgreSQL cluster
in `.annlab/postgres/` and stops it on exit. SIGINT or SIGTERM stops the MLflow server and then
the cluster, and the command ends quietly; starting it again finds every run where it was.

`postgres` manages the database, `mlflow_process` the `mlflow server` processes.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from annlab.errors import AnnlabError
from annlab.tracking.server import mlflow_process
from annlab.tracking.server.postgres import Cluster
from annlab.tracking.store import check_database, describe, is_postgres_url, sqlalchemy_url


@dataclass
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 5000
    backend_store_uri: str | None = None  # None: the local cluster in `cluster_dir`
    cluster_dir: Path = Path(".annlab/postgres")
    artifacts: str = ".annlab/artifacts"  # a folder, or a URI MLflow writes to (s3://...)
    # One uvicorn process serves concurrent clients on threads. More processes make every
    # keep-alive request wait ~40 ms: uvicorn's pre-bound socket leaves Nagle on (uvicorn #3149).
    workers: int = 1
    log: Path = Path(".annlab/mlflow-server.log")


def say(line: str) -> None:
    print(f"annlab server: {line}", flush=True)


@contextlib.contextmanager
def stop_requests() -> Iterator[threading.Event]:
    """SIGINT and SIGTERM set an event instead of raising: start-up and shutdown finish their
    step (no half-initialised cluster, no traceback) and the server stops in order."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def check_port_free(host: str, port: int) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is free
        try:
            sock.bind((host, port))
        except OSError as err:
            raise AnnlabError(
                f"Port {port} on {host} is not free ({err.strerror}): stop what uses it, or pick "
                "another with `annlab server --port N`."
            ) from None


def serve(options: ServerOptions) -> str:
    """Run until SIGINT / SIGTERM; the summary line once everything has stopped."""
    with stop_requests() as stop:
        check_port_free(options.host, options.port)
        cluster = None if options.backend_store_uri else Cluster(options.cluster_dir)
        with contextlib.nullcontext() if cluster is None else cluster.lock():
            try:
                url = _database(options, cluster)
                if not stop.is_set():
                    _run_mlflow(options, url, stop)
            finally:
                if cluster is not None:
                    cluster.stop()
    database = "" if cluster is None else f" and PostgreSQL in {options.cluster_dir}"
    return f"server: stopped the MLflow server{database}; start it again with the same command"


def _database(options: ServerOptions, cluster: Cluster | None) -> str:
    """The checked database URL: the one given, or the local cluster's (created once)."""
    if cluster is None:
        assert options.backend_store_uri is not None
        if not is_postgres_url(options.backend_store_uri):
            raise AnnlabError(
                "`--backend-store-uri` / MLFLOW_BACKEND_STORE_URI must be a PostgreSQL URL "
                "(postgresql://USER:PASSWORD@HOST:PORT/DB): unset it for a local cluster, or use "
                "`annlab ui` for a sqlite store."
            )
        url = sqlalchemy_url(options.backend_store_uri)
        check_database(url)
        say(f"database: PostgreSQL at {describe(url)}")
        return url
    created = not cluster.exists()
    if created:
        cluster.create()
    cluster.start()
    say(
        f"database: {'new ' if created else ''}PostgreSQL cluster in {options.cluster_dir} "
        f"(127.0.0.1:{cluster.port}, database mlflow, user mlflow, password in {cluster.pgpass})"
    )
    return cluster.url()


def artifact_destination(value: str) -> str:
    """A folder as an absolute path (created), so the server's working directory does not
    matter; a URI (s3://, gs://, ...) as given."""
    if "://" in value:
        return value
    folder = Path(value).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


def _run_mlflow(options: ServerOptions, url: str, stop: threading.Event) -> None:
    uri = f"http://{options.host}:{options.port}"
    artifacts = artifact_destination(options.artifacts)
    process = mlflow_process.start(url, options.host, options.port, artifacts, options.workers, options.log)
    try:
        if not mlflow_process.wait_until_serving(uri, process, options.log, stop.is_set):
            return
        say(f"artifacts in {artifacts} (proxied: clients need only the tracking URI)")
        say(f"MLflow server log: {options.log}; Ctrl-C or SIGTERM stops the server and the database")
        print(f"tracking.uri={uri}", flush=True)
        while not stop.wait(0.5):
            if process.poll() is not None:
                raise AnnlabError(
                    f"The MLflow server exited with code {process.returncode} "
                    f"({mlflow_process.last_line(options.log)}): see {options.log}."
                )
    finally:
        mlflow_process.stop(process)
