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
import os
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from annlab.sweeps.job_env import one_line_errors, set_job_env
from annlab.tracking import queries, tags
from annlab.tracking.store import SQLITE_PREFIX

PARENT_ENV = "ANNLAB_PARENT_RUN_ID"
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
        run_tags = {
            **lineage.git_tags(),
            tags.SWEEP_ROLE: "parent",
            tags.SWEEP_DIR: str(sweep_dir),
            tags.SWEEP_SWEEPER: _plugin_name(hydra.sweeper),
            tags.SWEEP_LAUNCHER: _plugin_name(hydra.launcher),
            tags.HYDRA_OVERRIDES: " ".join(overrides) or "(none)",
        }
        client = MlflowClient()
        run = store.retry_locked(
            lambda: client.create_run(
                self.experiment_id, run_name="sweep-" + "_".join(sweep_dir.parts[-2:]), tags=run_tags
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
        env = {PARENT_ENV: self.parent_run_id}
        if uri.startswith(SQLITE_PREFIX):
            # a relative sqlite path, made absolute for jobs in other folders (Ray workers); other
            # stores reach the jobs as they reached this process (config or environment), and a
            # database URL's password stays out of the jobs' .hydra/hydra.yaml
            env["MLFLOW_TRACKING_URI"] = absolute(uri)
        set_job_env(config, env)
        print(
            f"annlab sweep: MLflow parent run {self.parent_run_id} in experiment "
            f"'{cfg.experiment_name}' ({uri})",
            flush=True,
        )

    def _end(self, config: DictConfig) -> None:
        """Record the jobs' outcomes on the parent and end it: FINISHED when every job
        finished or was pruned, FAILED when one failed or none finished."""
        from mlflow import MlflowClient
        from mlflow.entities import Metric, RunTag

        from annlab.config.schema import validate
        from annlab.objective import best
        from annlab.sweeps.outcome import (
            FINISHED,
            PRUNED,
            SWEEP_ID_ENV,
            SweepOutcomes,
            read_outcomes,
            record,
        )
        from annlab.tracking.store import retry_locked

        cfg = validate(config)
        client = MlflowClient()
        parent = self.parent_run_id
        assert parent is not None and self.experiment_id is not None
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_id = os.environ.get(SWEEP_ID_ENV, "")
        seen = {job.number for job in read_outcomes(sweep_dir, sweep_id).jobs}
        children = queries.child_runs(client, self.experiment_id, parent)
        from_runs = outcomes_from_runs(children, cfg.objective.metric)
        for job in from_runs:
            if job.number not in seen:  # a Ray worker on another machine: its record is there
                record(sweep_dir, job)
        outcomes = read_outcomes(sweep_dir, sweep_id) if sweep_id else SweepOutcomes(from_runs)
        client.log_dict(parent, asdict(outcomes), "sweep/outcomes.json")
        finished = [job for job in outcomes.jobs if job.status == FINISHED]
        top = best(finished, lambda job: job.value, cfg.objective.direction)
        now = _now_ms()
        metrics = [
            Metric("sweep_jobs", len(outcomes.jobs), now, 0),
            Metric("sweep_jobs_finished", len(finished), now, 0),
            Metric("sweep_jobs_failed", len(outcomes.failed), now, 0),
            Metric("sweep_jobs_pruned", outcomes.count(PRUNED), now, 0),
        ]
        run_tags = []
        if top is not None:
            metrics.append(Metric(f"best_{cfg.objective.metric}", top.value, now, 0))
            run_tags += [
                RunTag(tags.SWEEP_BEST_RUN_ID, top.run_id or ""),
                RunTag(tags.SWEEP_BEST_JOB, str(top.number)),
                RunTag(tags.SWEEP_BEST_OVERRIDES, " ".join(top.overrides)),
            ]
        failures = "; ".join(f"{job.label()}: {job.reason}" for job in outcomes.failed)
        if failures:
            run_tags.append(RunTag(tags.SWEEP_FAILURES, failures[:5000]))
        reason = None
        if outcomes.failed:
            reason = f"{len(outcomes.failed)} of {len(outcomes.jobs)} jobs failed"
        elif top is None:
            reason = f"no job of the sweep finished ({outcomes.tally()})"
        if reason:
            run_tags.append(RunTag(tags.FAILURE_REASON, reason))
        retry_locked(lambda: client.log_batch(parent, metrics=metrics, tags=run_tags))
        retry_locked(lambda: client.set_terminated(parent, "FAILED" if reason else "FINISHED"))
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
                tags.FAILURE_REASON,
                "the sweep stopped before its end (interrupted, or a job raised)",
            )
            client.set_terminated(self.parent_run_id, "KILLED")


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


def outcomes_from_runs(runs: Iterable, metric: str) -> list:
    """What the child runs say of their jobs (by the `annlab.sweep.job` tag)."""
    from annlab.objective import finite, objective_key
    from annlab.sweeps.outcome import FAILED, FINISHED, PRUNED, JobOutcome

    jobs = []
    for run in runs:
        number = run.data.tags.get(tags.SWEEP_JOB)
        if number is None or not number.isdigit():
            continue
        if run.data.tags.get(tags.OPTUNA_STATE) == "PRUNED":
            status = PRUNED
        else:
            status = FINISHED if run.info.status == "FINISHED" else FAILED
        value = finite(run.data.metrics.get(objective_key(metric)))
        reason = run.data.tags.get(tags.FAILURE_REASON) if status == FAILED else None
        overrides = run.data.tags.get(tags.HYDRA_OVERRIDES, "").split()
        jobs.append(JobOutcome(int(number), overrides, status, value, reason, run.info.run_id))
    return jobs


def mark_pruned(run_id: str, epoch: int | None) -> None:
    """Tag a finished training run that the search's pruner stopped early."""
    from mlflow import MlflowClient

    from annlab.tracking.store import retry_locked

    client = MlflowClient()
    retry_locked(lambda: client.set_tag(run_id, tags.OPTUNA_STATE, "PRUNED"))
    retry_locked(lambda: client.set_tag(run_id, tags.OPTUNA_PRUNED_AT_EPOCH, str(epoch)))


def log_search_best(summary: dict[str, Any], path: Path) -> None:
    """Best params, value and study onto the sweep's MLflow parent run (when there is one)."""
    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return
    import time

    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    from annlab.tracking.store import retry_locked

    client = MlflowClient()
    metric = summary["objective"]["metric"]
    params = [Param(f"best.{k}", str(v)[:6000]) for k, v in summary["params"].items()]
    run_tags = [
        RunTag(tags.OPTUNA_STUDY, summary["study"]),
        RunTag(tags.OPTUNA_STORAGE, summary["storage"]),
        RunTag(tags.OPTUNA_BEST_TRIAL, str(summary["best_trial"])),
        RunTag(tags.OPTUNA_BEST_OVERRIDES, summary["overrides"]),
    ]
    if summary.get("mlflow_run_id"):
        run_tags.append(RunTag(tags.OPTUNA_BEST_RUN_ID, summary["mlflow_run_id"]))
    now = int(time.time() * 1000)
    metrics = [Metric(f"optuna_best_{metric}", summary["best_value"], now, 0)]
    metrics += [Metric(f"optuna_trials_{k}", v, now, 0) for k, v in summary["trials"].items()]
    # a cross-validated search: the best trial's CV scores, and the refit's run and test scores
    best_cv = {
        k: v
        for k, v in run_metrics(summary.get("mlflow_run_id")).items()
        if k.startswith("cv_") and k.endswith(("_mean", "_std"))
    }
    metrics += [Metric(f"best_{k}", v, now, 0) for k, v in best_cv.items()]
    refit = summary.get("refit") or {}
    if refit.get("mlflow_run_id"):
        run_tags.append(RunTag(tags.REFIT_RUN_ID, refit["mlflow_run_id"]))
    metrics += [Metric(f"refit_{k}", v, now, 0) for k, v in (refit.get("test_metrics") or {}).items()]
    retry_locked(lambda: client.log_batch(parent, metrics=metrics, params=params, tags=run_tags))
    retry_locked(lambda: client.log_artifact(parent, str(path), "hparams_search"))


def run_metrics(run_id: str | None) -> dict[str, float]:
    """A run's latest metrics, or nothing when there is no run (tracking off)."""
    if not run_id:
        return {}
    from mlflow import MlflowClient

    from annlab.tracking.store import retry_locked

    return dict(retry_locked(lambda: MlflowClient().get_run(run_id)).data.metrics)
