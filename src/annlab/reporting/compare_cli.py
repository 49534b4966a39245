"""`annlab compare`: the runs of an experiment or a sweep as a ranked table and figures.

annlab compare --experiment digits_mlp
annlab compare --parent-run 5243db715ded499585db7fa245d195f6 --top 5
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_OUTPUT = Path("reports") / "comparison"


def _compare(args: argparse.Namespace) -> str:
    from annlab.reporting.compare import compare_runs, write_comparison

    comparison = compare_runs(args.experiment, args.parent_run, args.metric, args.direction)
    out_dir = Path(args.output) if args.output else DEFAULT_OUTPUT / comparison.slug
    written = write_comparison(comparison, out_dir, top=args.top)
    best = comparison.runs[0]
    value = comparison.value(best)
    shown = "n/a" if value is None else f"{value:.4f}"
    return (
        f"compare: {len(comparison.runs)} runs of {comparison.where} ranked by "
        f"{comparison.metric_key} ({comparison.direction}); best {best.info.run_name} "
        f"({best.info.run_id}) {shown} -> {written['markdown']}, {written['csv']}"
    )


def add_compare_command(sub) -> None:
    c = sub.add_parser(
        "compare",
        help="rank the runs of an experiment or a sweep: table "
        "(CSV, Markdown) and figures under reports/comparison/",
    )
    which = c.add_mutually_exclusive_group(required=True)
    which.add_argument("--experiment", help="the finished runs of this MLflow experiment")
    which.add_argument("--parent-run", help="the child runs of this sweep's parent run")
    c.add_argument(
        "--metric",
        help="rank by this metric (default: the runs' objective, logged as objective_<objective.metric>)",
    )
    c.add_argument(
        "--direction", choices=("maximize", "minimize"), help="default: the runs' objective.direction"
    )
    c.add_argument("--top", type=int, default=3, help="learning curves of this many best runs")
    c.add_argument(
        "--output",
        "-o",
        default=None,
        help="folder for the files (default: reports/comparison/<experiment or sweep>)",
    )
    c.set_defaults(func=_compare)
