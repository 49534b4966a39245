"""`annlab`: the project's helper commands (the pipeline itself runs through `dvc` and
`annlab-train`).

    annlab params            # rewrite params.yaml from conf/ (as `dvc exp run` would)
    annlab ui                # MLflow UI (and TensorBoard) on 127.0.0.1 for the project's store
    annlab server            # a team's MLflow server on PostgreSQL: prints tracking.uri=http://...
    annlab predict new.csv   # predictions of models/model.keras (or runs:/ID, models:/NAME@champion)
    annlab request new.csv   # the JSON body for `mlflow models serve` /invocations
    annlab promote --experiment NAME   # register the best run's model as models:/NAME@champion
    annlab export            # TensorFlow SavedModel for TensorFlow Serving
    annlab compare --experiment NAME   # rank runs (or a sweep: --parent-run ID) -> reports/comparison/
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from annlab.reporting.compare_cli import add_compare_command
from annlab.serving.cli import add_serving_commands
from annlab.stages.common import run_entry


def _params(args: argparse.Namespace) -> str:
    from annlab.config.params import write_params

    path = write_params(args.output, args.overrides)
    return f"params: wrote {path} from conf/{' with ' + ' '.join(args.overrides) if args.overrides else ''}"


def _ui(args: argparse.Namespace) -> str:
    from annlab.tracking.ui import serve_ui

    return serve_ui(args.host, args.port, args.backend_store_uri, args.tensorboard, args.tensorboard_port)


def _server(args: argparse.Namespace) -> str:
    from pathlib import Path

    from annlab.tracking.server import ServerOptions, serve

    options = ServerOptions(
        host=args.host,
        port=args.port,
        backend_store_uri=args.backend_store_uri,
        cluster_dir=Path(args.cluster_dir),
        artifacts=args.artifacts_destination,
        workers=args.workers,
        log=Path(args.log),
    )
    return serve(options)


def add_server_command(sub) -> None:
    s = sub.add_parser(
        "server",
        help="an MLflow tracking server on PostgreSQL with proxied artifacts, for a team or a cluster",
    )
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine)")
    s.add_argument("--port", type=int, default=5000)
    s.add_argument(
        "--backend-store-uri",
        default=os.environ.get("MLFLOW_BACKEND_STORE_URI"),
        help="an existing PostgreSQL database, postgresql://USER:PASSWORD@HOST:PORT/DB (default: "
        "MLFLOW_BACKEND_STORE_URI, which keeps the password out of `ps`; if unset, a local cluster "
        "in --cluster-dir, created on first use)",
    )
    s.add_argument("--cluster-dir", default=".annlab/postgres", help="local cluster (default %(default)s)")
    s.add_argument(
        "--artifacts-destination",
        default=".annlab/artifacts",
        help="artifact folder, or a URI such as s3://BUCKET/mlflow (default %(default)s)",
    )
    s.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes (default 1: it serves requests on threads; with more, "
        "uvicorn leaves Nagle on and each keep-alive request waits ~40 ms, uvicorn #3149)",
    )
    s.add_argument("--log", default=".annlab/mlflow-server.log", help="the MLflow server's log")
    s.set_defaults(func=_server)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="annlab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("params", help="compose conf/ into params.yaml, as `dvc exp run` does")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model.n_hidden=3")
    p.add_argument("--output", default="params.yaml")
    p.set_defaults(func=_params)

    u = sub.add_parser("ui", help="start the MLflow UI (and TensorBoard) on 127.0.0.1")
    u.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: only this machine)"
    )
    u.add_argument("--port", type=int, default=5000)
    u.add_argument(
        "--backend-store-uri", default=None, help="default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db"
    )
    u.add_argument("--tensorboard", action="store_true", help="also start TensorBoard on the runs' tb_logs/")
    u.add_argument("--tensorboard-port", type=int, default=6006)
    u.set_defaults(func=_ui)
    add_server_command(sub)
    add_serving_commands(sub)
    add_compare_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    run_entry(args.command, lambda: args.func(args))


if __name__ == "__main__":
    main(sys.argv[1:])
