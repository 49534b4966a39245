"""The `annlab` subcommands for using a trained model: predict, request, promote, export.

Kept here so `annlab/cli.py` only registers them; each handler returns the one summary line
that `run_entry` prints (or raises `AnnlabError`, printed as one error line).
"""

from __future__ import annotations

import argparse

MODEL_HELP = (
    "models/model.keras (default), an MLflow run id (runs:/ID or ID) or a model URI "
    "(models:/NAME@champion); MLflow ones are read from MLFLOW_TRACKING_URI or "
    "sqlite:///mlflow.db"
)


def _predict(args: argparse.Namespace) -> str:
    from annlab.serving.predict import predict_file

    return predict_file(args.model, args.data, args.output, args.top_k)


def _request(args: argparse.Namespace) -> str:
    from annlab.serving.request import write_request

    return write_request(args.model, args.data, args.output)


def _promote(args: argparse.Namespace) -> str:
    from annlab.tracking.registry import promote

    done = promote(
        run_id=args.run_id,
        experiment=args.experiment,
        parent_run_id=args.parent_run,
        metric=args.metric,
        direction=args.direction,
        alias=args.alias,
        name=args.name,
    )
    chosen = ""
    if done.metric and done.value is not None:
        chosen = f", {done.metric} {done.value:.6g} ({done.direction})"
        chosen += f", best of {done.candidates} runs of {done.chosen_from}" if done.candidates > 1 else ""
    return (
        f"promote: run {done.run_id} -> {done.uri} (version {done.version} of "
        f"{done.name!r}{chosen}); serve it: mlflow models serve -m {done.uri} "
        "--env-manager local --host 127.0.0.1 --port 5001"
    )


def _export(args: argparse.Namespace) -> str:
    from annlab.serving.export import export_summary

    return export_summary(args.model, args.output, args.version, args.format)


def add_serving_commands(sub) -> None:
    """Register predict, request, promote and export on the `annlab` subparsers."""
    p = sub.add_parser("predict", help="predict on new raw data (CSV, Parquet, .npy, IDX)")
    p.add_argument("data", help="CSV / Parquet with the training feature columns, or .npy / IDX")
    p.add_argument("--model", "-m", default="models/model.keras", help=MODEL_HELP)
    p.add_argument(
        "--output", "-o", default="predictions.csv", help="predictions CSV (default predictions.csv)"
    )
    p.add_argument(
        "--top-k", type=int, default=3, help="classifiers: how many best classes to list (default 3)"
    )
    p.set_defaults(func=_predict)

    r = sub.add_parser(
        "request", help="write the JSON body of POST /invocations for `mlflow models serve` from a data file"
    )
    r.add_argument("data", help="CSV / Parquet with the training feature columns, or .npy / IDX")
    r.add_argument("--model", "-m", default="models/model.keras", help=MODEL_HELP)
    r.add_argument("--output", "-o", default="request.json")
    r.set_defaults(func=_request)

    m = sub.add_parser("promote", help="register a run's model and set an alias (champion) on it")
    which = m.add_mutually_exclusive_group(required=True)
    which.add_argument("--run-id", help="this run's model")
    which.add_argument("--experiment", help="the best run of this MLflow experiment")
    which.add_argument("--parent-run", help="the best child run of this sweep parent run")
    m.add_argument(
        "--metric",
        help="compare on this metric (default: the runs' objective, logged as objective_<objective.metric>)",
    )
    m.add_argument(
        "--direction", choices=("maximize", "minimize"), help="default: the runs' objective.direction"
    )
    m.add_argument("--alias", default="champion")
    m.add_argument("--name", help="registered model name (default: the run's experiment name)")
    m.set_defaults(func=_promote)

    e = sub.add_parser("export", help="export a TensorFlow SavedModel for TensorFlow Serving")
    e.add_argument("--model", "-m", default="models/model.keras", help=MODEL_HELP)
    e.add_argument("--format", default="savedmodel", choices=("savedmodel",))
    e.add_argument(
        "--output",
        "-o",
        default=None,
        help="base folder of versions (default export/<experiment>); the SavedModel "
        "goes to OUTPUT/<next version>",
    )
    e.add_argument("--version", type=int, default=None, help="version number (default: next)")
    e.set_defaults(func=_export)
