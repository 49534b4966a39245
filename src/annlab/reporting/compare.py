"""Runs of an MLflow experiment or of a sweep as a table, best first by the objective, with
figures: the metric against each swept setting, and the learning curves of the top runs."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annlab.errors import AnnlabError


def experiment_runs(
    experiment_name: str, metric: str, direction: str, max_results: int = 20
) -> list[dict[str, Any]]:
    """Finished training runs of `experiment_name` (not sweep parents), sorted by `metric`
    (best first)."""
    import mlflow

    experiment = mlflow.get_experiment_by_name(experiment_name)
    if experiment is None:
        return []
    order = "DESC" if direction == "maximize" else "ASC"
    runs = mlflow.search_runs(
        experiment_ids=[experiment.experiment_id],
        filter_string="attributes.status = 'FINISHED'",
        order_by=[f"metrics.`{metric}` {order}", "attributes.start_time DESC"],
        max_results=max_results,
        output_format="list",
    )
    rows = []
    for run in runs:
        if run.data.tags.get("annlab.sweep.role") == "parent":
            continue
        m = run.data.metrics
        rows.append(
            {
                "run_id": run.info.run_id,
                "run_name": run.info.run_name,
                "start_time": run.info.start_time,
                "objective": m.get(metric),
                "metrics": {k: v for k, v in m.items() if k.startswith("test_")},
                "params": run.data.params,
                "overrides": run.data.tags.get("annlab.hydra.overrides"),
            }
        )
    return rows


SHOWN_SETTINGS = 6


def run_settings(rows: list[dict[str, Any]]) -> list[str]:
    """Which config each run used, in a few words: the settings whose values differ between
    the runs (`optimizer.learning_rate=0.05`), else the run's Hydra overrides, else "defaults"."""
    keys = sorted({k for row in rows for k in row.get("params", {})})
    varied = [
        k
        for k in keys
        if not k.startswith(NOISY_PARAMS) and len({row.get("params", {}).get(k) for row in rows}) > 1
    ]
    settings = []
    for row in rows:
        params = row.get("params", {})
        if varied:
            shown = [f"{k}={params.get(k, '(unset)')}" for k in varied[:SHOWN_SETTINGS]]
            more = len(varied) - SHOWN_SETTINGS
            settings.append(", ".join(shown) + (f", ... ({more} more)" if more > 0 else ""))
        elif row.get("overrides") and row["overrides"] != "(none)":
            settings.append(row["overrides"])
        else:
            settings.append("defaults" if len(rows) == 1 else "same settings as the others")
    return settings


# -- `annlab compare`: the runs of an experiment or a sweep, ranked, as files ------------------

MINIMIZE_HINTS = ("loss", "mse", "mae", "error", "rmse", "seconds")
MAXIMIZE_HINTS = ("accuracy", "auc", "f1", "precision", "recall", "r2")
NOISY_PARAMS = ("tracking.", "paths.")  # differ between runs without being a setting of the model


@dataclass
class Comparison:
    """Runs ranked by one metric: what `annlab compare` writes as a table and figures."""

    where: str
    slug: str
    metric_key: str
    history_key: str
    direction: str
    runs: list[Any]
    swept: list[str]
    skipped: dict[str, int] = field(default_factory=dict)

    def value(self, run) -> float | None:
        value = run.data.metrics.get(self.metric_key)
        return None if value is None or not math.isfinite(value) else float(value)

    @staticmethod
    def pruned(run) -> bool:
        return run.data.tags.get("annlab.optuna.state") == "PRUNED"


def compare_runs(
    experiment: str | None = None,
    parent_run_id: str | None = None,
    metric: str | None = None,
    direction: str | None = None,
) -> Comparison:
    """The finished runs of an experiment or of a sweep (children of its parent run), best
    first; pruned runs and runs without the metric last."""
    import mlflow

    from annlab.config.schema import TrackingConfig
    from annlab.tracking import store
    from annlab.tracking.sweeps import ROLE_TAG, child_runs

    if (experiment is None) == (parent_run_id is None):
        raise AnnlabError("Expected exactly one of --experiment NAME or --parent-run ID.")
    if direction not in (None, "maximize", "minimize"):
        raise AnnlabError(f"Expected --direction maximize or minimize. Received: {direction!r}.")
    store.configure(TrackingConfig())
    client = mlflow.MlflowClient()
    if parent_run_id:
        try:
            parent = client.get_run(parent_run_id)
        except mlflow.exceptions.MlflowException:
            raise AnnlabError(
                f"MLflow run '{parent_run_id}' not found in "
                f"{mlflow.get_tracking_uri()}: check the id (mlflow ui), or set "
                "MLFLOW_TRACKING_URI to its store."
            ) from None
        runs = child_runs(client, parent.info.experiment_id, parent_run_id)
        where, slug = (
            f"sweep {parent.info.run_name or parent_run_id}",
            (parent.info.run_name or parent_run_id),
        )
    else:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            names = [e.name for e in client.search_experiments()]
            raise AnnlabError(
                f"MLflow experiment {experiment!r} not found in "
                f"{mlflow.get_tracking_uri()}: experiments there: {names[:12]}."
            )
        runs = [
            r
            for r in client.search_runs([found.experiment_id], max_results=50000)
            if r.data.tags.get(ROLE_TAG) != "parent"
        ]
        where, slug = f"experiment {experiment!r}", str(experiment)
    finished = [r for r in runs if r.info.status == "FINISHED"]
    skipped = {
        s.lower(): sum(1 for r in runs if r.info.status == s)
        for s in ("FAILED", "KILLED", "RUNNING")
        if any(r.info.status == s for r in runs)
    }
    if not finished:
        raise AnnlabError(
            f"{where.capitalize()} has no finished run to compare "
            f"({len(runs)} runs: {skipped or 'none'}): train first."
        )
    metric_key, history_key, direction = _objective(finished, metric, direction, where)
    comparison = Comparison(
        where, _slug(slug), metric_key, history_key, direction, [], swept_params(finished), skipped
    )
    sign = -1.0 if direction == "maximize" else 1.0

    def order(run) -> tuple:
        value = comparison.value(run)
        return (comparison.pruned(run), value is None, sign * (value or 0.0))

    comparison.runs = sorted(finished, key=order)
    return comparison


def _objective(
    runs: list[Any], metric: str | None, direction: str | None, where: str
) -> tuple[str, str, str]:
    """(metric key to rank by, per-epoch metric for curves, direction)."""
    objectives = {
        (r.data.params.get("objective.metric"), r.data.params.get("objective.direction")) for r in runs
    }
    if metric is None:
        if len(objectives) != 1 or None in next(iter(objectives)):
            raise AnnlabError(
                f"The runs of {where} do not share one objective "
                f"({sorted(map(str, objectives))}): choose with --metric M "
                "--direction D."
            )
        name, own = next(iter(objectives))
        return f"objective_{name}", name, direction or own
    logged = {k for r in runs for k in r.data.metrics}
    key = f"objective_{metric}" if f"objective_{metric}" in logged else metric
    if key not in logged:
        raise AnnlabError(f"No run of {where} logged {metric!r}: its metrics are {sorted(logged)[:15]}.")
    if direction is None:
        own = {d for m, d in objectives if m == metric}
        direction = own.pop() if len(own) == 1 else guess_direction(metric)
    if direction is None:
        raise AnnlabError(
            f"Cannot tell whether --metric {metric} is better high or low: add "
            "--direction maximize or --direction minimize."
        )
    return key, metric, direction


def guess_direction(metric: str) -> str | None:
    name = metric.lower()
    if any(h in name for h in MINIMIZE_HINTS):
        return "minimize"
    if any(h in name for h in MAXIMIZE_HINTS):
        return "maximize"
    return None


def swept_params(runs: list[Any]) -> list[str]:
    """Params whose values differ between the runs: what the sweep varied."""
    keys = sorted({k for r in runs for k in r.data.params})
    return [
        k for k in keys if not k.startswith(NOISY_PARAMS) and len({r.data.params.get(k) for r in runs}) > 1
    ]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "runs"


def table_rows(comparison: Comparison) -> list[dict[str, Any]]:
    rows = []
    for rank, run in enumerate(comparison.runs, start=1):
        metrics = run.data.metrics
        row: dict[str, Any] = {
            "rank": rank,
            "run_name": run.info.run_name,
            "run_id": run.info.run_id,
            **{k: run.data.params.get(k) for k in comparison.swept},
            comparison.metric_key: comparison.value(run),
            **{k: metrics[k] for k in sorted(metrics) if k.startswith("test_")},
            "epochs_run": metrics.get("epochs_run"),
            "train_seconds": metrics.get("train_seconds"),
            "state": "pruned" if comparison.pruned(run) else "finished",
        }
        rows.append(row)
    return rows


def write_comparison(comparison: Comparison, out_dir: Path, top: int = 3) -> dict[str, Path]:
    """comparison.csv, comparison.md, metric_vs_params.png, learning_curves_top.png."""
    import mlflow
    import pandas as pd

    from annlab.reporting import figures

    out_dir.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(table_rows(comparison))
    written = {"csv": out_dir / "comparison.csv", "markdown": out_dir / "comparison.md"}
    frame.to_csv(written["csv"], index=False)
    made: list[Path] = []
    ranked = [r for r in comparison.runs if comparison.value(r) is not None and not comparison.pruned(r)]
    if comparison.swept and ranked:
        points = {p: [(r.data.params.get(p), comparison.value(r)) for r in ranked] for p in comparison.swept}
        written["params_figure"] = figures.metric_against_params(
            points, comparison.metric_key, comparison.direction, out_dir / "metric_vs_params.png"
        )
        made.append(written["params_figure"])
    client = mlflow.MlflowClient()
    curves = {}
    for run in ranked[:top]:
        history = {}
        for key in (comparison.history_key, comparison.history_key.removeprefix("val_")):
            points = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
            if points:
                history[key] = [m.value for m in points]
        if history:
            label = run.info.run_name + "".join(
                f" {p.rsplit('.', 1)[-1]}={run.data.params.get(p)}" for p in comparison.swept[:3]
            )
            curves[label] = history
    if curves:
        written["curves_figure"] = figures.top_learning_curves(
            curves, comparison.history_key, out_dir / "learning_curves_top.png"
        )
        made.append(written["curves_figure"])
    written["markdown"].write_text(_markdown(comparison, frame, made))
    return written


def _markdown(comparison: Comparison, frame, figures_made: list[Path]) -> str:
    skipped = ", ".join(f"{n} {s}" for s, n in comparison.skipped.items())
    lines = [
        f"# Runs of {comparison.where}",
        "",
        f"{len(comparison.runs)} finished runs ranked by `{comparison.metric_key}` "
        f"({comparison.direction}){'; not shown: ' + skipped if skipped else ''}. "
        f"Swept: {', '.join(f'`{p}`' for p in comparison.swept) or 'nothing'}.",
        "",
    ]
    shown = frame.copy()
    for column in shown.columns:
        if shown[column].dtype.kind == "f":
            shown[column] = shown[column].map(lambda v: "" if v != v else f"{v:.4g}")
    header = "| " + " | ".join(map(str, shown.columns)) + " |"
    lines += [header, "|" + "---|" * len(shown.columns)]
    lines += [
        "| " + " | ".join("" if v is None else str(v) for v in row) + " |"
        for row in shown.itertuples(index=False)
    ]
    lines.append("")
    lines += [f"![{p.stem}]({p.name})" for p in figures_made]
    return "\n".join(lines) + "\n"
