"""Register a run's model in the MLflow Model Registry and point an alias (`champion`) at it.

The run is given, or chosen as the best of an experiment or of a sweep (the children of its
parent run) by the objective every run records: the metric `objective_<objective.metric>`,
optimised in the direction of the param `objective.direction`. The registered model is named
after the experiment, so `models:/<experiment>@champion` is always that experiment's best
promoted model. The version records what it was chosen on (tags and description).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from annlab.config.schema import TrackingConfig
from annlab.errors import AnnlabError
from annlab.objective import DIRECTIONS, best, finite, resolve, run_objectives
from annlab.tracking import queries, tags

DEFAULT_ALIAS = "champion"


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


def _candidates(runs: list[Any]) -> list[Candidate]:
    """The runs that logged a model (annlab's `annlab.model_uri` tag, else MLflow's search)."""
    if not runs:
        return []
    logged = queries.logged_models_by_run(sorted({r.info.experiment_id for r in runs}))
    out = []
    for run in runs:
        uri = run.data.tags.get(tags.MODEL_URI) or logged.get(run.info.run_id)
        if uri:
            out.append(Candidate(run, uri))
    return out


def _runs_to_compare(client, experiment: str | None, parent_run_id: str | None):
    """The finished runs of a sweep (children of its parent run) or of an experiment."""
    if parent_run_id:
        _, children = queries.sweep_runs(client, parent_run_id)
        return [r for r in children if r.info.status == "FINISHED"], f"sweep {parent_run_id}"
    experiment_id = queries.experiment_id(client, experiment or "")
    return queries.training_runs(client, experiment_id, finished_only=True), f"experiment {experiment!r}"


def _given_run(
    client, run_id: str, metric: str | None, direction: str | None
) -> tuple[Candidate, str | None, str | None]:
    """A run named by id: promoted as is; its objective (or --metric) is recorded if logged."""
    found = _candidates([queries.get_run(client, run_id)])
    if not found:
        raise AnnlabError(
            f"MLflow run '{run_id}' has no logged model (tracking.log_model was "
            "false, or it failed before logging): pick another run."
        )
    chosen = found[0]
    metrics = chosen.run.data.metrics
    try:
        key, _, direction = resolve(
            run_objectives([chosen.run]), set(metrics), metric, direction, f"run {run_id}"
        )
    except AnnlabError:
        if metric is not None:
            raise
        return chosen, None, None  # not an annlab objective: nothing to record
    if key not in metrics:
        return chosen, None, None
    chosen.value = finite(metrics[key])
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
    if direction not in (None, *DIRECTIONS):
        raise AnnlabError(f"Expected --direction maximize or minimize. Received: {direction!r}.")
    client = queries.client(TrackingConfig())
    if run_id:
        chosen, key, direction = _given_run(client, run_id, metric, direction)
        where, n = f"run {run_id}", 1
    else:
        runs, where = _runs_to_compare(client, experiment, parent_run_id)
        candidates = _candidates(runs)
        if not candidates:
            raise AnnlabError(
                f"{where.capitalize()} has no finished run with a logged model: "
                "train one first (dvc repro, annlab-train)."
            )
        logged = {k for c in candidates for k in c.run.data.metrics}
        key, _, direction = resolve(
            run_objectives(c.run for c in candidates), logged, metric, direction, where
        )
        top = best(candidates, lambda c: c.run.data.metrics.get(key), direction)
        if top is None:
            raise AnnlabError(
                f"No finished run of {where} with a logged model has the metric "
                f"{key!r}: pick another with --metric, or train first."
            )
        chosen, n = top, len(candidates)
        chosen.value = finite(chosen.run.data.metrics.get(key))
    run = chosen.run
    name = name or client.get_experiment(run.info.experiment_id).name
    version_tags = {
        tags.VERSION_RUN_ID: run.info.run_id,
        tags.VERSION_CHOSEN_FROM: where,
        tags.VERSION_CANDIDATES: str(n),
    }
    if key is not None:
        version_tags.update(
            {
                tags.VERSION_METRIC: key,
                tags.VERSION_METRIC_VALUE: repr(chosen.value),
                tags.VERSION_DIRECTION: str(direction),
            }
        )
    version = _register(client, name, chosen, version_tags)
    description = f"Promoted to @{alias} by `annlab promote`: run {run.info.run_id}"
    if key is not None and chosen.value is not None:
        description += f", {key} = {chosen.value:.6g} ({direction})"
        description += f", best of {n} runs of {where}" if n > 1 else ""
    description += "."
    client.update_model_version(name, version, description=description)
    for k, v in version_tags.items():
        client.set_model_version_tag(name, version, k, v)
    client.set_registered_model_alias(name, alias, version)
    return Promotion(
        name, str(version), alias, run.info.run_id, chosen.model_uri, key, chosen.value, direction, n, where
    )


def _register(client, name: str, chosen: Candidate, version_tags: dict[str, str]) -> str:
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
        return str(mlflow.register_model(chosen.model_uri, name, tags=version_tags).version)
    except MlflowException as err:
        first = str(err).splitlines()[0][:200]
        raise AnnlabError(
            f"Cannot register {chosen.model_uri} as {name!r} ({first}): pick a valid registry "
            "name with --name."
        ) from None
