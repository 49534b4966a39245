"""Runs of an MLflow experiment or of a sweep as a table, best first by the objective, with
figures: the metric against each swept setting, and the learning curves of the top runs."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annlab.errors import AnnlabError
from annlab.objective import finite, ranked, resolve, run_objectives
from annlab.tracking import tags


def experiment_runs(
    experiment_name: str, metric: str, direction: str, max_results: int = 20
) -> list[dict[str, Any]]:
    """Finished training runs of `experiment_name` (not sweep parents), best first by
    `metric`, as rows for the report (on the store the caller configured)."""
    from annlab.tracking import queries

    client = queries.client()
    found = client.get_experiment_by_name(experiment_name)
    if found is None:
        return []
    runs = queries.top_training_runs(client, found.experiment_id, metric, direction, max_results)
    return [
        {
            "run_id": run.info.run_id,
            "run_name": run.info.run_name,
            "start_time": run.info.start_time,
            "objective": run.data.metrics.get(metric),
            "metrics": {k: v for k, v in run.data.metrics.items() if k.startswith("test_")},
            "params": run.data.params,
            "overrides": run.data.tags.get(tags.HYDRA_OVERRIDES),
        }
        for run in runs
    ]


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
        return finite(run.data.metrics.get(self.metric_key))

    @staticmethod
    def pruned(run) -> bool:
        return run.data.tags.get(tags.OPTUNA_STATE) == "PRUNED"


def compare_runs(
    experiment: str | None = None,
    parent_run_id: str | None = None,
    metric: str | None = None,
    direction: str | None = None,
) -> Comparison:
    """The finished runs of an experiment or of a sweep (children of its parent run), best
    first; pruned runs and runs without the metric last."""
    from annlab.config.schema import TrackingConfig
    from annlab.tracking import queries

    if (experiment is None) == (parent_run_id is None):
        raise AnnlabError("Expected exactly one of --experiment NAME or --parent-run ID.")
    if direction not in (None, "maximize", "minimize"):
        raise AnnlabError(f"Expected --direction maximize or minimize. Received: {direction!r}.")
    client = queries.client(TrackingConfig())
    if parent_run_id:
        parent, runs = queries.sweep_runs(client, parent_run_id)
        name = parent.info.run_name or parent_run_id
        where, slug = f"sweep {name}", name
    else:
        runs = queries.training_runs(client, queries.experiment_id(client, str(experiment)))
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
    logged = {k for r in finished for k in r.data.metrics}
    metric_key, history_key, direction = resolve(run_objectives(finished), logged, metric, direction, where)
    comparison = Comparison(
        where, _slug(slug), metric_key, history_key, direction, [], swept_params(finished), skipped
    )
    unpruned = ranked([r for r in finished if not comparison.pruned(r)], comparison.value, direction)
    comparison.runs = unpruned + ranked(
        [r for r in finished if comparison.pruned(r)], comparison.value, direction
    )
    return comparison


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
    import pandas as pd

    from annlab.reporting import figures
    from annlab.tracking import queries

    out_dir.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(table_rows(comparison))
    written = {"csv": out_dir / "comparison.csv", "markdown": out_dir / "comparison.md"}
    frame.to_csv(written["csv"], index=False)
    made: list[Path] = []
    scored = [r for r in comparison.runs if comparison.value(r) is not None and not comparison.pruned(r)]
    if comparison.swept and scored:
        points = {p: [(r.data.params.get(p), comparison.value(r)) for r in scored] for p in comparison.swept}
        written["params_figure"] = figures.metric_against_params(
            points, comparison.metric_key, comparison.direction, out_dir / "metric_vs_params.png"
        )
        made.append(written["params_figure"])
    client = queries.client()
    curves = {}
    for run in scored[:top]:
        history = {}
        for key in (comparison.history_key, comparison.history_key.removeprefix("val_")):
            values = queries.metric_history(client, run.info.run_id, key)
            if values:
                history[key] = values
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
