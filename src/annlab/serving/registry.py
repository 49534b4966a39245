"""Register a run's model in the MLflow Model Registry and point an alias (`champion`) at it.

The run is given, or chosen as the best of an experiment or of a sweep (the children of its
parent run) by the objective every run records: the metric `objective_<objective.metric>`,
optimised in the direction of the param `objective.direction`. The registered model is named
after the experiment, so `models:/<experiment>@champion` is always that experiment's best
promoted model. The version records what it was chosen on (tags and description).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from annlab.errors import AnnlabError
from annlab.reporting.compare import guess_direction

DEFAULT_ALIAS = "champion"
MODEL_URI_TAG = "annlab.model_uri"


@dataclass
class Promotion:
    name: str
    version: str
    alias: str
    run_id: str
    model_uri: str
    metric: str | None
    value: float | None
    direction: str | None
    candidates: int
    chosen_from: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@{self.alias}"


@dataclass
class Candidate:
    run: Any
    model_uri: str
    value: float | None = None


def _client():
    import mlflow

    from annlab.config.schema import TrackingConfig
    from annlab.tracking import store

    store.configure(TrackingConfig())
    return mlflow.MlflowClient()


def _get_run(client, run_id: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        import mlflow

        raise AnnlabError(
            f"MLflow run '{run_id}' not found in {mlflow.get_tracking_uri()}: check "
            "the id (mlflow ui), or set MLFLOW_TRACKING_URI to its store."
        ) from None


def _models_by_run(client, experiment_ids: list[str]) -> dict[str, str]:
    """Each run's newest LoggedModel, for runs without annlab's `annlab.model_uri` tag."""
    import mlflow

    found = mlflow.search_logged_models(
        experiment_ids=experiment_ids,
        output_format="list",
        order_by=[{"field_name": "creation_timestamp", "ascending": True}],
    )
    return {m.source_run_id: m.model_uri for m in found if m.source_run_id}


def _candidates(client, runs: list[Any]) -> list[Candidate]:
    experiment_ids = sorted({r.info.experiment_id for r in runs})
    logged = _models_by_run(client, experiment_ids) if runs else {}
    out = []
    for run in runs:
        uri = run.data.tags.get(MODEL_URI_TAG) or logged.get(run.info.run_id)
        if uri:
            out.append(Candidate(run, uri))
    return out


def _finished_runs(client, experiment_id: str, extra_filter: str = "") -> list[Any]:
    query = "attributes.status = 'FINISHED'" + (f" AND {extra_filter}" if extra_filter else "")
    return list(client.search_runs([experiment_id], filter_string=query, max_results=50000))


def _objective(
    candidates: list[Candidate], metric: str | None, direction: str | None, where: str
) -> tuple[str, str]:
    """The metric key to compare and its direction: given, or the runs' own objective."""
    objectives = {
        (c.run.data.params.get("objective.metric"), c.run.data.params.get("objective.direction"))
        for c in candidates
    }
    if metric is None:
        if len(objectives) != 1 or None in next(iter(objectives)):
            shown = sorted(f"{m}/{d}" for m, d in objectives)
            raise AnnlabError(
                f"The runs of {where} do not share one objective (params objective.metric / "
                f"objective.direction: {shown}): choose with --metric M --direction D."
            )
        name, default_direction = next(iter(objectives))
        return f"objective_{name}", direction or default_direction
    logged = {k for c in candidates for k in c.run.data.metrics}
    key = metric if metric in logged or f"objective_{metric}" not in logged else f"objective_{metric}"
    if direction is None:
        own = {d for m, d in objectives if m is not None and metric in (m, f"objective_{m}")}
        direction = own.pop() if len(own) == 1 else guess_direction(metric)
    if direction is None:
        raise AnnlabError(
            f"Cannot tell whether --metric {metric} is better high or low: add "
            "--direction maximize or --direction minimize."
        )
    return key, direction


def _best(candidates: list[Candidate], key: str, direction: str, where: str) -> Candidate:
    scored = []
    for c in candidates:
        value = c.run.data.metrics.get(key)
        if value is not None and math.isfinite(value):
            c.value = float(value)
            scored.append(c)
    if not scored:
        raise AnnlabError(
            f"No finished run of {where} with a logged model has the metric "
            f"{key!r}: pick another with --metric, or train first."
        )
    pick = max if direction == "maximize" else min
    return pick(scored, key=lambda c: c.value)


def _runs_to_compare(client, experiment: str | None, parent_run_id: str | None):
    """The finished runs of a sweep (children of its parent run) or of an experiment."""
    if parent_run_id:
        parent = _get_run(client, parent_run_id)
        return (
            _finished_runs(client, parent.info.experiment_id, f"tags.mlflow.parentRunId = '{parent_run_id}'"),
            f"sweep {parent_run_id}",
        )
    found = client.get_experiment_by_name(experiment or "")
    if found is None:
        import mlflow

        names = [e.name for e in client.search_experiments()]
        raise AnnlabError(
            f"MLflow experiment {experiment!r} not found in "
            f"{mlflow.get_tracking_uri()}: experiments there: {names[:12]}."
        )
    return _finished_runs(client, found.experiment_id), f"experiment {experiment!r}"


def _given_run(
    client, run_id: str, metric: str | None, direction: str | None
) -> tuple[Candidate, str | None, str | None]:
    """A run named by id: promoted as is; its objective (or --metric) is recorded if logged."""
    found = _candidates(client, [_get_run(client, run_id)])
    if not found:
        raise AnnlabError(
            f"MLflow run '{run_id}' has no logged model (tracking.log_model was "
            "false, or it failed before logging): pick another run."
        )
    chosen = found[0]
    metrics = chosen.run.data.metrics
    try:
        key, direction = _objective(found, metric, direction, f"run {run_id}")
    except AnnlabError:
        if metric is not None:
            raise
        return chosen, None, None  # not an annlab objective: nothing to record
    if key not in metrics:
        if metric is not None:
            raise AnnlabError(
                f"MLflow run '{run_id}' has no metric {metric!r}: its metrics are {sorted(metrics)[:12]}."
            )
        return chosen, None, None
    chosen.value = float(metrics[key])
    return chosen, key, direction


def promote(
    run_id: str | None = None,
    experiment: str | None = None,
    parent_run_id: str | None = None,
    metric: str | None = None,
    direction: str | None = None,
    alias: str = DEFAULT_ALIAS,
    name: str | None = None,
) -> Promotion:
    """Register the chosen run's LoggedModel as a new version (or reuse the version already
    registered from that run) and set `alias` on it."""
    if sum(x is not None for x in (run_id, experiment, parent_run_id)) != 1:
        raise AnnlabError("Expected exactly one of --run-id, --experiment or --parent-run.")
    if direction not in (None, "maximize", "minimize"):
        raise AnnlabError(f"Expected --direction maximize or minimize. Received: {direction!r}.")
    client = _client()
    if run_id:
        chosen, key, direction = _given_run(client, run_id, metric, direction)
        where, n = f"run {run_id}", 1
    else:
        runs, where = _runs_to_compare(client, experiment, parent_run_id)
        candidates = _candidates(client, runs)
        if not candidates:
            raise AnnlabError(
                f"{where.capitalize()} has no finished run with a logged model: "
                "train one first (dvc repro, annlab-train)."
            )
        key, direction = _objective(candidates, metric, direction, where)
        chosen, n = _best(candidates, key, direction, where), len(candidates)
    run = chosen.run
    name = name or client.get_experiment(run.info.experiment_id).name
    tags = {"annlab.run_id": run.info.run_id, "annlab.chosen_from": where, "annlab.candidates": str(n)}
    if key is not None:
        tags.update(
            {
                "annlab.metric": key,
                "annlab.metric_value": repr(chosen.value),
                "annlab.direction": str(direction),
            }
        )
    version = _register(client, name, chosen, tags)
    description = f"Promoted to @{alias} by `annlab promote`: run {run.info.run_id}"
    if key is not None:
        description += f", {key} = {chosen.value:.6g} ({direction})"
        description += f", best of {n} runs of {where}" if n > 1 else ""
    description += "."
    client.update_model_version(name, version, description=description)
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, v)
    client.set_registered_model_alias(name, alias, version)
    return Promotion(
        name, str(version), alias, run.info.run_id, chosen.model_uri, key, chosen.value, direction, n, where
    )


def _register(client, name: str, chosen: Candidate, tags: dict[str, str]) -> str:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
        existing = client.search_model_versions(f"name = '{name}' and run_id = '{chosen.run.info.run_id}'")
    except MlflowException:
        existing = []
    if existing:
        return str(max(int(v.version) for v in existing))
    try:
        return str(mlflow.register_model(chosen.model_uri, name, tags=tags).version)
    except MlflowException as err:
        first = str(err).splitlines()[0][:200]
        raise AnnlabError(
            f"Cannot register {chosen.model_uri} as {name!r} ({first}): pick a "
            "valid registry name with --name."
        ) from None
