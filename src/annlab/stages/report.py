"""DVC stage `report`: figures, reports/report.md and a self-contained reports/report.html.

Imports no TensorFlow: it reads what train and evaluate wrote, and the MLflow store.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from annlab.config.schema import Config
from annlab.data.split import load_splits
from annlab.errors import AnnlabError
from annlab.io import atomic_dir, atomic_file, read_json
from annlab.reporting import figures
from annlab.reporting.report import ReportData, render_html, render_markdown
from annlab.stages.common import stage_main
from annlab.tracking.helper import MlflowHelper, helper_for
from annlab.tracking.runs import flush_logging

FIGURES_DIR = "figures"


def report(
    cfg: Config,
    data_dir: str | Path | None = None,
    model_dir: str | Path | None = None,
    reports_dir: str | Path | None = None,
) -> str:
    model_dir = Path(model_dir or cfg.paths.models)
    reports = Path(reports_dir or cfg.paths.reports)
    for needed in (model_dir / "history.csv", reports / "metrics.json", model_dir / "run.json"):
        if not needed.is_file():
            raise AnnlabError(f"'{needed}' not found: run `dvc repro evaluate` first.")
    run_id = read_json(model_dir / "run.json").get("run_id") if cfg.tracking.enabled else None
    # MLflow imports in a helper process while this one draws the figures.
    with helper_for(cfg.tracking, run_id) as helper:
        return _report(cfg, data_dir, model_dir, reports, run_id, helper)


def _report(
    cfg: Config,
    data_dir: str | Path | None,
    model_dir: Path,
    reports: Path,
    run_id: str | None,
    helper: MlflowHelper | None,
) -> str:
    import pandas as pd

    splits = load_splits(data_dir or cfg.paths.processed)
    meta = splits.meta
    history = figures.read_history(model_dir / "history.csv")
    metrics = read_json(reports / "metrics.json")
    details = read_json(reports / "evaluation" / "details.json")
    predictions = pd.read_csv(reports / "evaluation" / "predictions.csv")

    with atomic_dir(reports / FIGURES_DIR) as tmp:
        made = {"Learning curves": figures.learning_curves(history, tmp / "learning_curves.png", meta.task)}
        first_rows = []
        if meta.task in ("multiclass", "binary"):
            made["Confusion matrix"] = figures.confusion_matrix(
                details["confusion_matrix"], details["class_names"], tmp / "confusion_matrix.png"
            )
            actual = predictions["actual"].astype(str).tolist()
            predicted = predictions["predicted"].astype(str).tolist()
            if meta.is_image:
                made["Test images and predictions"] = figures.sample_images(
                    splits.test[0], actual, predicted, tmp / "sample_predictions.png"
                )
            for i in range(min(10, len(predictions))):
                first_rows.append(
                    {
                        "actual": actual[i],
                        "wrong": actual[i] != predicted[i],
                        "prediction": f"{predicted[i]} ({predictions['probability'][i]:.2f})",
                    }
                )
        else:
            made["Predicted against actual, residuals"] = figures.predicted_vs_actual(
                predictions["actual"].to_numpy(np.float64),
                predictions["predicted"].to_numpy(np.float64),
                tmp / "predicted_vs_actual.png",
            )
            first_rows = [
                {"actual": f"{a:.3f}", "prediction": f"{p:.3f}"}
                for a, p in zip(predictions["actual"][:10], predictions["predicted"][:10], strict=True)
            ]
        comparison, uri = [], None
        if helper is not None:
            comparison, uri = helper.call(comparison_and_log, cfg, run_id, list(made.values()), reports)
        data = ReportData(
            cfg,
            meta.to_dict(),
            metrics,
            details,
            made,
            (model_dir / "summary.txt").read_text(),
            run_id,
            uri,
            comparison,
            first_rows,
        )
        rel = {title: f"{FIGURES_DIR}/{path.name}" for title, path in made.items()}
        markdown, page = render_markdown(data, rel), render_html(data)
    with atomic_file(reports / "report.md") as handle:
        handle.write(markdown)
    with atomic_file(reports / "report.html") as handle:
        handle.write(page)
    return f"report: {len(made)} figures -> {reports / 'report.md'}, {reports / 'report.html'}"


def comparison_and_log(cfg: Config, run_id: str, pngs: list[Path], reports: Path):
    """Log the test scores and figures to the training run, then fetch the experiment's runs to
    compare (runs in the MLflow helper, the store already configured)."""
    from annlab.objective import objective_key
    from annlab.reporting.compare import experiment_runs
    from annlab.tracking import queries, runs

    runs.log_evaluation(run_id, reports)
    runs.log_figures(run_id, pngs)
    comparison = []
    with contextlib.suppress(Exception):  # the report must not fail on a comparison query
        comparison = experiment_runs(
            cfg.experiment_name, objective_key(cfg.objective.metric), cfg.objective.direction
        )
    return comparison, queries.store_uri()


def main() -> None:
    stage_main("report", report, flush=flush_logging)  # MLflow runs here where no helper forks


if __name__ == "__main__":
    main()
