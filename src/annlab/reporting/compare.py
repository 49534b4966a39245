"""Runs of one MLflow experiment as a table, best first by the objective."""

from __future__ import annotations

from typing import Any


def experiment_runs(experiment_name: str, metric: str, direction: str,
                    max_results: int = 20) -> list[dict[str, Any]]:
    """Finished runs of `experiment_name`, sorted by `metric` (best first)."""
    import mlflow

    experiment = mlflow.get_experiment_by_name(experiment_name)
    if experiment is None:
        return []
    order = "DESC" if direction == "maximize" else "ASC"
    runs = mlflow.search_runs(
        experiment_ids=[experiment.experiment_id],
        filter_string="attributes.status = 'FINISHED'",
        order_by=[f"metrics.`{metric}` {order}", "attributes.start_time DESC"],
        max_results=max_results, output_format="list",
    )
    rows = []
    for run in runs:
        m = run.data.metrics
        rows.append({
            "run_id": run.info.run_id,
            "run_name": run.info.run_name,
            "start_time": run.info.start_time,
            "objective": m.get(metric),
            "metrics": {k: v for k, v in m.items() if k.startswith("test_")},
            "params": run.data.params,
        })
    return rows
