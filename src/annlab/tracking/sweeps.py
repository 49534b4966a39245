"""One MLflow parent run per Hydra sweep; each job's run is its child.

`SweepParentCallback` is a Hydra callback (registered under `hydra.callbacks` in
conf/config.yaml). In the launching process, before the sweeper and launcher start, it:

- creates the store and the experiment once, so parallel jobs do not race on a fresh sqlite
  store's schema migration;
- creates the parent run with `MlflowClient` (no run becomes active in this process, so jobs run
  in-process by the basic launcher can still start theirs) and logs the sweep's overrides and
  base config;
- hands the parent id (and the resolved tracking URI) to every job through
  `hydra.job.env_set`, which Hydra applies inside the job's own process whatever the launcher
  (basic, joblib workers, Ray workers on other machines);
- drops `MLFLOW_RUN_ID`, which would win over `parent_run_id` in every job (mlflow #15713).

When the sweep ends it records the best child by `objective.metric` / `objective.direction` and
ends the parent FINISHED (FAILED if no job finished; KILLED if the process exits first).
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from annlab.errors import AnnlabError

PARENT_ENV = "ANNLAB_PARENT_RUN_ID"
ROLE_TAG = "annlab.sweep.role"
PRUNED_TAG = "annlab.optuna.state"
MAX_PARAMS_PER_BATCH = 100  # MLflow's log_batch limit
T = TypeVar("T")


class SweepParentCallback(Callback):
    """Hydra callback: the sweep's MLflow parent run, from before the first job to the end."""

    def __init__(self) -> None:
        self.parent_run_id: str | None = None
        self.experiment_id: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        one_line_errors(lambda: self._start(config))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.parent_run_id is not None:
            one_line_errors(lambda: self._end(config))

    def _start(self, config: DictConfig) -> None:
        from annlab.config.schema import validate

        cfg = validate(config)
        os.environ.pop("MLFLOW_RUN_ID", None)
        if not cfg.tracking.enabled:
            return
        from mlflow import MlflowClient

        from annlab.tracking import lineage, store

        uri = store.configure(cfg.tracking)
        self.experiment_id = store.ensure_experiment(cfg.experiment_name)
        hydra = config.hydra
        sweep_dir = Path(hydra.sweep.dir).resolve()
        overrides = [str(o) for o in hydra.overrides.task]
        space = swept_settings(overrides, hydra.sweeper.get("params") or {})
        tags = {
            **lineage.git_tags(),
            ROLE_TAG: "parent",
            "annlab.sweep.dir": str(sweep_dir),
            "annlab.sweep.sweeper": _plugin_name(hydra.sweeper),
            "annlab.sweep.launcher": _plugin_name(hydra.launcher),
            "annlab.hydra.overrides": " ".join(overrides) or "(none)",
        }
        client = MlflowClient()
        run = store.retry_locked(
            lambda: client.create_run(
                self.experiment_id, run_name="sweep-" + "_".join(sweep_dir.parts[-2:]), tags=tags
            )
        )
        self.parent_run_id = run.info.run_id
        atexit.register(self._end_if_still_running)
        _log_sweep_params(client, self.parent_run_id, cfg, space)
        client.log_dict(
            self.parent_run_id,
            OmegaConf.to_container(
                OmegaConf.masked_copy(config, [k for k in config if k != "hydra"]), resolve=True
            ),
            "sweep/config.yaml",
        )
        client.log_dict(
            self.parent_run_id,
            {
                "overrides": overrides,
                "sweeper": OmegaConf.to_container(hydra.sweeper, resolve=True),
                "launcher": OmegaConf.to_container(hydra.launcher, resolve=True),
            },
            "sweep/hydra.yaml",
        )
        os.environ[PARENT_ENV] = self.parent_run_id
        set_job_env(config, {PARENT_ENV: self.parent_run_id, "MLFLOW_TRACKING_URI": absolute(uri)})
        print(
            f"annlab sweep: MLflow parent run {self.parent_run_id} in experiment "
            f"'{cfg.experiment_name}' ({uri})",
            flush=True,
        )

    def _end(self, config: DictConfig) -> None:
        from mlflow import MlflowClient
        from mlflow.entities import Metric, RunTag

        from annlab.config.schema import validate
        from annlab.tracking.store import retry_locked

        cfg = validate(config)
        client = MlflowClient()
        parent = self.parent_run_id
        assert parent is not None and self.experiment_id is not None
        children = child_runs(client, self.experiment_id, parent)
        best = best_run(children, cfg.objective.metric, cfg.objective.direction)
        counts = {
            status: sum(1 for r in children if r.info.status == status)
            for status in ("FINISHED", "FAILED", "KILLED")
        }
        pruned = sum(1 for r in children if r.data.tags.get(PRUNED_TAG) == "PRUNED")
        now = _now_ms()
        metrics = [
            Metric("sweep_jobs", len(children), now, 0),
            Metric("sweep_jobs_finished", counts["FINISHED"] - pruned, now, 0),
            Metric("sweep_jobs_failed", counts["FAILED"] + counts["KILLED"], now, 0),
            Metric("sweep_jobs_pruned", pruned, now, 0),
        ]
        tags = []
        if best is not None:
            value = objective_of(best, cfg.objective.metric)
            metrics.append(Metric(f"best_{cfg.objective.metric}", value, now, 0))
            tags += [
                RunTag("annlab.sweep.best_run_id", best.info.run_id),
                RunTag("annlab.sweep.best_run_name", best.info.run_name or ""),
                RunTag("annlab.sweep.best_overrides", best.data.tags.get("annlab.hydra.overrides", "")),
            ]
            print(
                f"annlab sweep: best of {len(children)} runs: {best.info.run_id} "
                f"({best.data.tags.get('annlab.hydra.overrides', '')}) "
                f"{cfg.objective.metric}={value:.4f}",
                flush=True,
            )
        else:
            tags.append(
                RunTag("annlab.failure_reason", f"no job of the sweep finished ({len(children)} started)")
            )
        retry_locked(lambda: client.log_batch(parent, metrics=metrics, tags=tags))
        status = "FINISHED" if best is not None else "FAILED"
        retry_locked(lambda: client.set_terminated(parent, status))
        self.parent_run_id = None
        os.environ.pop(PARENT_ENV, None)

    def _end_if_still_running(self) -> None:
        """The process exits before `on_multirun_end` (an error, Ctrl-C): no parent left RUNNING."""
        if self.parent_run_id is None:
            return
        from mlflow import MlflowClient

        with contextlib.suppress(Exception):
            client = MlflowClient()
            client.set_tag(
                self.parent_run_id,
                "annlab.failure_reason",
                "the sweep stopped before its end (interrupted, or a job raised)",
            )
            client.set_terminated(self.parent_run_id, "KILLED")


def one_line_errors(action: Callable[[], T]) -> T:
    """Project style: a user error is one line and a non-zero exit, not Hydra's traceback."""
    from annlab.stages.common import EXIT_USER_ERROR, debug_requested

    try:
        return action()
    except AnnlabError as err:
        if debug_requested():
            raise
        print(f"annlab-train: error: {err}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USER_ERROR)


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def _plugin_name(node: DictConfig) -> str:
    return str(node.get("_target_", "?")).rsplit(".", 1)[-1]


def absolute(uri: str) -> str:
    """A relative sqlite URI made absolute, so jobs with another working directory (Ray
    workers) find the same file; any other URI as it is."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        return prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri


def quote_override_value(value: str) -> str:
    """A string as a quoted value of Hydra's override grammar (URIs hold `:` and `/`)."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise AnnlabError(f"Cannot pass {value!r} to the sweep's jobs: it holds both kinds of quotes.")


def set_job_env(config: DictConfig, env: dict[str, str]) -> None:
    """Make Hydra set `env` in every job's process, whatever the launcher.

    Launchers compose each job from the sweep's `hydra.overrides.hydra` plus the job's own
    overrides, in the job's process or on the driver before shipping it; `hydra.job.env_set`
    is applied by Hydra's `run_job` inside the job process itself.
    """
    with read_write(config.hydra), open_dict(config.hydra):
        hydra_overrides = list(config.hydra.overrides.hydra)
        for key, value in env.items():
            hydra_overrides.append(f"++hydra.job.env_set.{key}={quote_override_value(value)}")
        config.hydra.overrides.hydra = hydra_overrides


def swept_settings(overrides: Iterable[str], search_space: dict[str, Any]) -> dict[str, str]:
    """Key -> sweep spec of every swept setting: command-line sweeps and a sweeper's space."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    swept: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        if override.is_sweep_override():
            key, _, spec = override.input_line.partition("=")
            swept[key.lstrip("+~")] = spec
    for key, spec in search_space.items():
        swept[str(key)] = str(spec)
    return swept


def _log_sweep_params(client, run_id: str, cfg, swept: dict[str, str]) -> None:
    """Params of the parent: the base config with each swept setting's sweep spec instead."""
    from mlflow.entities import Param

    from annlab.config.schema import flatten, to_dict
    from annlab.tracking.store import retry_locked

    flat = {k: ("null" if v is None else str(v)) for k, v in flatten(to_dict(cfg)).items()}
    for key in swept:
        flat.pop(key, None)
        for sub in [k for k in flat if k.startswith(key + ".")]:  # a group: dataset=digits,iris
            flat.pop(sub)
    flat.update({f"sweep.{k}": v for k, v in swept.items()})
    params = [Param(k, v[:6000]) for k, v in sorted(flat.items())]
    for i in range(0, len(params), MAX_PARAMS_PER_BATCH):
        chunk = params[i : i + MAX_PARAMS_PER_BATCH]
        retry_locked(lambda chunk=chunk: client.log_batch(run_id, params=chunk))


def child_runs(client, experiment_id: str, parent_run_id: str) -> list:
    """Every run whose MLflow parent is `parent_run_id`."""
    from annlab.tracking.store import retry_locked

    runs: list = []
    token = None
    while True:
        page = retry_locked(
            lambda token=token: client.search_runs(
                [experiment_id],
                filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
                max_results=1000,
                page_token=token,
            )
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def objective_of(run, metric: str) -> float | None:
    """The run's objective: what training returned (`objective_<metric>`), else the metric's
    last value."""
    metrics = run.data.metrics
    value = metrics.get(f"objective_{metric}", metrics.get(metric))
    return None if value is None or not math.isfinite(value) else float(value)


def best_run(runs: Iterable, metric: str, direction: str):
    """The best FINISHED, not pruned run by the objective, or None."""
    scored = [
        (objective_of(r, metric), r)
        for r in runs
        if r.info.status == "FINISHED" and r.data.tags.get(PRUNED_TAG) != "PRUNED"
    ]
    scored = [(v, r) for v, r in scored if v is not None]
    if not scored:
        return None
    pick = max if direction == "maximize" else min
    return pick(scored, key=lambda pair: pair[0])[1]
