"""Reading runs back from MLflow for comparisons, reports and promotion.

Everything here returns MLflow's own `Run` objects (`run.info`, `run.data.params`, `.metrics`,
`.tags`), which the reporting and serving code read without calling MLflow themselves.
"""

from __future__ import annotations

from typing import Any

from annlab.config.schema import TrackingConfig
from annlab.errors import AnnlabError
from annlab.tracking import tags
from annlab.tracking.store import configure, retry_locked

MAX_RESULTS = 50_000


def client(tracking: TrackingConfig | None = None):
    """An MlflowClient on `tracking`'s store (its uri, else MLFLOW_TRACKING_URI, else the
    default), or, without it, on the store this process already configured."""
    import mlflow

    if tracking is not None:
        configure(tracking)
    return mlflow.MlflowClient()


def store_uri() -> str:
    import mlflow

    return mlflow.get_tracking_uri()


def experiment_id(client_, name: str) -> str:
    """The id of experiment `name`; a missing one is one line listing those there are."""
    found = client_.get_experiment_by_name(name)
    if found is None:
        names = [e.name for e in client_.search_experiments()]
        raise AnnlabError(
            f"MLflow experiment {name!r} not found in {store_uri()}: experiments there: {names[:12]}."
        )
    return found.experiment_id


def get_run(client_, run_id: str):
    from mlflow.exceptions import MlflowException

    try:
        return client_.get_run(run_id)
    except MlflowException:
        raise AnnlabError(
            f"MLflow run '{run_id}' not found in {store_uri()}: check the id (mlflow ui), or set "
            "MLFLOW_TRACKING_URI to its store."
        ) from None


def search(
    client_,
    experiment_ids: list[str],
    filter_string: str = "",
    order_by: list[str] | None = None,
    max_results: int = MAX_RESULTS,
) -> list[Any]:
    """Every run that matches, page after page."""
    runs: list[Any] = []
    token = None
    while True:
        page = retry_locked(
            lambda token=token: client_.search_runs(
                experiment_ids,
                filter_string=filter_string,
                order_by=order_by,
                max_results=min(max_results - len(runs), 1000),
                page_token=token,
            )
        )
        runs.extend(page)
        token = page.token
        if not token or len(runs) >= max_results:
            return runs


def child_runs(client_, experiment_id_: str, parent_run_id: str) -> list[Any]:
    """Every run whose MLflow parent is `parent_run_id`."""
    return search(client_, [experiment_id_], f"tags.mlflow.parentRunId = '{parent_run_id}'")


def training_runs(client_, experiment_id_: str, finished_only: bool = False) -> list[Any]:
    """The experiment's training runs (sweep parents and cross-validation folds left out)."""
    query = "attributes.status = 'FINISHED'" if finished_only else ""
    return [
        r
        for r in search(client_, [experiment_id_], query)
        if r.data.tags.get(tags.SWEEP_ROLE) != "parent" and tags.CV_FOLD not in r.data.tags
    ]


def top_training_runs(client_, experiment_id_: str, metric_key: str, direction: str, limit: int) -> list[Any]:
    """The experiment's `limit` best finished training runs by `metric_key`, the store doing the
    sorting (a report must not read every run of a long-lived experiment)."""
    order = "DESC" if direction == "maximize" else "ASC"
    runs = search(
        client_,
        [experiment_id_],
        "attributes.status = 'FINISHED'",
        order_by=[f"metrics.`{metric_key}` {order}", "attributes.start_time DESC"],
        max_results=2 * limit,  # room for sweep parents, which are left out
    )
    return [r for r in runs if r.data.tags.get(tags.SWEEP_ROLE) != "parent"][:limit]


def sweep_runs(client_, parent_run_id: str) -> tuple[Any, list[Any]]:
    """(the sweep's parent run, its child runs)."""
    parent = get_run(client_, parent_run_id)
    return parent, child_runs(client_, parent.info.experiment_id, parent_run_id)


def metric_history(client_, run_id: str, key: str) -> list[float]:
    """A metric's values by step (epoch)."""
    points = sorted(client_.get_metric_history(run_id, key), key=lambda m: m.step)
    return [m.value for m in points]


def logged_models_by_run(experiment_ids: list[str]) -> dict[str, str]:
    """Each run's newest LoggedModel URI (for runs logged without the model-URI tag)."""
    import mlflow

    found = mlflow.search_logged_models(
        experiment_ids=experiment_ids,
        output_format="list",
        order_by=[{"field_name": "creation_timestamp", "ascending": True}],
    )
    return {m.source_run_id: m.model_uri for m in found if m.source_run_id}
