"""annlab's Optuna sweeper: ask the study for trials, launch them as Hydra jobs, tell results.

Why not `hydra-optuna-sweeper`: its release pins optuna<3, its database storage breaks with
SQLAlchemy 2, and it has neither pruning nor resume. This one runs on current Optuna with
ask-and-tell, so any Hydra launcher (basic, joblib, Ray) runs the trials:

- the study lives in an RDB storage (sqlite by default): rerunning the same command resumes it,
  and several machines given one database URL share one study;
- each job gets its trial through `hydra.job.env_set` and reports the objective's validation
  metric every epoch; the study's pruner stops bad trials (their jobs end as pruned);
- a job that fails (a bad config value, any exception) is told FAIL and the search goes on,
  and the sweep exits non-zero at its end (annlab.sweeps.outcome); trials cut short by Ctrl-C or
  a killed sweeper are marked and redone on resume;
- the best params go to <paths.reports>/hparams_search/<study>_best.yaml and to the sweep's
  MLflow parent run;
- with cross-validated trials (`training.cv_folds` >= 2, each trial scored by the mean over its
  held-out folds, no model of its own) the search ends with a refit, as RandomizedSearchCV's
  `refit=True`: one more job through the same launcher trains the best configuration on the
  whole training split and evaluates it on the test split; its run is tagged
  `annlab.refit=true` and ranked by that configuration's CV score, so `annlab promote
  --parent-run` picks it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

DEFAULT_STORAGE = "sqlite:///multirun/optuna.db"
OWNER_ATTR = "annlab_owner"
INTERRUPTED_ATTR = "annlab_interrupted"


class AnnlabOptunaSweeper(Sweeper):
    def __init__(
        self,
        study_name: str | None,
        storage: str | None,
        n_trials: int,
        n_jobs: int | None,
        sampler: Any,
        pruner: Any,
        params: Any,
        best_params_file: str | None,
        refit: bool = True,
    ) -> None:
        self.study_name = study_name
        self.storage = storage
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.sampler_config = sampler
        self.pruner_config = pruner
        self.params = (
            OmegaConf.to_container(params, resolve=True)
            if isinstance(params, DictConfig)
            else dict(params or {})
        )
        self.best_params_file = best_params_file
        self.refit = refit
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from annlab.sweeps.job_env import one_line_errors

        return one_line_errors(lambda: self._sweep(arguments))

    # -- the search -------------------------------------------------------------------------

    def _sweep(self, arguments: list[str]) -> list[Sequence[Any]]:
        import optuna

        from annlab.config.schema import validate
        from annlab.errors import AnnlabError
        from annlab.sweeps.job_env import set_job_env
        from annlab.sweeps.optuna_trial import STORAGE_ENV, STUDY_ENV, open_storage
        from annlab.sweeps.outcome import outcome_of
        from hydra_plugins.annlab_optuna_sweeper.search_space import parse_search_space

        assert self.config is not None and self.launcher is not None
        cfg = validate(self.config)
        metric, direction = cfg.objective.metric, cfg.objective.direction
        if not metric.startswith("val_"):
            raise AnnlabError(
                "Expected `objective.metric` to be a validation metric (val_...) for a search: "
                f"the test split stays out of model selection. Received: objective.metric={metric}."
            )
        if cfg.training.cv_folds and self.pruner_config is not None:
            raise AnnlabError(
                f"Expected `hydra.sweeper.pruner` to be null with training.cv_folds={cfg.training.cv_folds}: "
                "cross-validated trials are scored on their held-out folds, not pruned by epoch. "
                f"Received: hydra.sweeper.pruner={_name_of(self.pruner_config)}."
            )
        if self.n_trials < 1:
            raise AnnlabError(f"Expected `hydra.sweeper.n_trials` >= 1. Received: {self.n_trials}.")
        space, fixed = parse_search_space(self.params, arguments)
        if not space:
            raise AnnlabError(
                "Expected a search space: pick one (`hparams_search=...`), set "
                "`hydra.sweeper.params`, or sweep on the command line (model.n_hidden=range(0,4))."
            )
        url = storage_url(self.storage)
        name = self.study_name or cfg.experiment_name
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            study_name=name,
            storage=open_storage(url),
            direction=direction,
            load_if_exists=True,
            sampler=built(self.sampler_config) or optuna.samplers.TPESampler(seed=cfg.seed),
            pruner=built(self.pruner_config) or optuna.pruners.NopPruner(),
        )
        if study.direction.name.lower() != direction:
            raise AnnlabError(
                f"Study '{name}' in {url} was made to {study.direction.name.lower()}, not to "
                f"{direction} (objective.direction): set `hydra.sweeper.study_name` to a new name."
            )
        set_job_env(self.config, {STORAGE_ENV: url, STUDY_ENV: name})
        fail_interrupted(study)
        reseed_on_resume(study, self.config.hydra.sweeper.get("sampler"), cfg.seed)
        done = counted_trials(study)
        log.info(
            f"Optuna study '{name}' ({url}): {done} of {self.n_trials} trials done; "
            f"{metric} to {direction}; space: {', '.join(space)}"
        )
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        returns: list[Sequence[Any]] = []
        job_idx = 0
        batch_size = self._batch_size()
        while (remaining := self.n_trials - counted_trials(study)) > 0:
            trials = [study.ask(space) for _ in range(min(batch_size, remaining))]
            for trial in trials:
                trial.set_user_attr(OWNER_ATTR, owner())
            batch = [self._job_overrides(fixed, trial) for trial in trials]
            try:
                self.validate_batch_is_legal(batch)
            except Exception as err:
                for trial in trials:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                raise AnnlabError(f"Cannot compose a trial's config: {' '.join(str(err).split())}") from None
            try:
                results = self.launcher.launch(batch, initial_job_idx=job_idx)
            except BaseException:
                for trial in trials:
                    with contextlib.suppress(Exception):
                        mark_interrupted(study, trial.number)
                raise
            exhausted = False
            for i, (trial, result) in enumerate(zip(trials, results, strict=True)):
                exhausted |= tell(study, trial, outcome_of(result, job_idx + i), metric)
            job_idx += len(batch)
            returns.append(results)
            if exhausted:
                log.info(f"The sampler has tried its whole search space: study '{name}' ends.")
                break
        refit = None
        if self.refit and cfg.training.cv_folds:
            refit, results = self._refit(study, fixed, job_idx) or (None, None)
            if results is not None:
                returns.append(results)
        self._report(study, cfg, url, name, refit)
        return returns

    def _batch_size(self) -> int:
        if self.n_jobs:
            return max(1, self.n_jobs)
        assert self.config is not None
        launcher_jobs = self.config.hydra.launcher.get("n_jobs")
        if isinstance(launcher_jobs, int) and launcher_jobs != 0:
            return launcher_jobs if launcher_jobs > 0 else (os.cpu_count() or 1)
        return 1

    @staticmethod
    def _job_overrides(fixed: list[str], trial) -> list[str]:
        """The trial's values, and its storage id for the job (in the job's environment)."""
        from annlab.sweeps.optuna_ids import storage_id
        from annlab.sweeps.optuna_trial import TRIAL_ID_ENV
        from hydra_plugins.annlab_optuna_sweeper.search_space import as_override

        return [
            *fixed,
            *(as_override(k, v) for k, v in trial.params.items()),
            f"++hydra.job.env_set.{TRIAL_ID_ENV}='{storage_id(trial)}'",
        ]

    def _refit(self, study, fixed: list[str], job_idx: int):
        """One more job: the best trial's configuration on the whole training split
        (`training.cv_folds=0`), evaluated on the test split, ranked by the trial's CV score.
        (outcome, the launcher's results), or None when no trial completed."""
        import optuna

        from annlab.errors import AnnlabError
        from annlab.sweeps.optuna_trial import TRIAL_ID_ENV, Refit
        from annlab.sweeps.outcome import FINISHED, outcome_of
        from hydra_plugins.annlab_optuna_sweeper.search_space import as_override

        if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            return None
        best = study.best_trial
        env = {**Refit(best.number, float(best.value)).env(), TRIAL_ID_ENV: ""}
        overrides = [
            *(o for o in fixed if o.split("=", 1)[0].lstrip("+~") != "training.cv_folds"),
            *(as_override(k, v) for k, v in best.params.items() if k != "training.cv_folds"),
            "training.cv_folds=0",
            *(f"++hydra.job.env_set.{k}='{v}'" for k, v in env.items()),
        ]
        try:
            self.validate_batch_is_legal([overrides])
        except Exception as err:
            raise AnnlabError(f"Cannot compose the refit's config: {' '.join(str(err).split())}") from None
        log.info(f"Refit: trial {best.number}'s configuration on the whole training split (job {job_idx})")
        results = self.launcher.launch([overrides], initial_job_idx=job_idx)
        outcome = outcome_of(results[0], job_idx)
        if outcome.status != FINISHED:
            log.warning(f"The refit (job {job_idx}) failed: {outcome.reason}")
        return outcome, results

    # -- the outcome ------------------------------------------------------------------------

    def _report(self, study, cfg, url: str, name: str, refit=None) -> None:
        import optuna
        import yaml

        from hydra_plugins.annlab_optuna_sweeper.search_space import as_override

        states = optuna.trial.TrialState
        counts = {
            s.name.lower(): len(study.get_trials(deepcopy=False, states=(s,)))
            for s in (states.COMPLETE, states.PRUNED, states.FAIL)
        }
        if not counts["complete"]:
            log.warning(f"Optuna study '{name}': no trial completed ({counts}); no best params.")
            return
        best = study.best_trial
        params = dict(best.params)
        summary = {
            "study": name,
            "storage": url,
            "objective": {"metric": cfg.objective.metric, "direction": cfg.objective.direction},
            "best_value": float(best.value),
            "best_trial": best.number,
            "mlflow_run_id": best.user_attrs.get("mlflow_run_id"),
            "params": params,
            "overrides": " ".join(as_override(k, v) for k, v in params.items()),
            "trials": counts,
        }
        if refit is not None:
            from annlab.tracking.sweeps import run_metrics

            test = {k: v for k, v in run_metrics(refit.run_id).items() if k.startswith("test_")}
            summary["refit"] = {
                "job": refit.number,
                "status": refit.status,
                "mlflow_run_id": refit.run_id,
                "test_metrics": test,
            }
        path = Path(self.best_params_file or Path(cfg.paths.reports) / "hparams_search" / f"{name}_best.yaml")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(summary, sort_keys=False))
        log.info(
            f"Best of study '{name}': trial {best.number}, {cfg.objective.metric}="
            f"{best.value:.4f} with {summary['overrides']} -> {path}"
        )
        from annlab.tracking.sweeps import log_search_best

        log_search_best(summary, path)


def _name_of(spec: Any) -> str:
    if isinstance(spec, dict | DictConfig):
        return str(spec.get("_target_", spec)).rsplit(".", 1)[-1]
    return type(spec).__name__


def built(spec: Any) -> Any:
    """A sampler or pruner: Hydra instantiates nested `_target_` nodes along with the sweeper,
    but a config node (or None) may still arrive."""
    if spec is None or not isinstance(spec, dict | DictConfig):
        return spec
    from hydra.utils import instantiate

    return instantiate(spec)


def reseed_on_resume(study, sampler_config: Any, default_seed: int) -> None:
    """A seeded sampler made anew would draw its first (random) trials again on resume: seed
    it with the number of trials already stored, so a resumed search explores new points and
    is still reproducible."""
    import optuna
    from hydra.utils import instantiate

    done = len(study.get_trials(deepcopy=False))
    if not done:
        return
    if sampler_config is None:
        study.sampler = optuna.samplers.TPESampler(seed=default_seed + done)
    elif isinstance(sampler_config, DictConfig) and sampler_config.get("seed") is not None:
        study.sampler = instantiate(sampler_config, seed=int(sampler_config.seed) + done)


def storage_url(storage: str | None) -> str:
    """The study's RDB URL, with a relative sqlite path made absolute (jobs elsewhere)."""
    from annlab.tracking.sweeps import absolute

    url = absolute(storage or DEFAULT_STORAGE)
    prefix = "sqlite:///"
    if url.startswith(prefix):
        Path(url[len(prefix) :]).parent.mkdir(parents=True, exist_ok=True)
    return url


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_interrupted(study) -> None:
    """RUNNING trials whose sweeper on this host is gone (killed, machine restarted) are marked
    interrupted and FAIL, so a resumed search runs them again; other hosts' trials stay."""
    import optuna

    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        who = str(trial.user_attrs.get(OWNER_ATTR, ""))
        name, _, pid = who.rpartition(":")
        if name == host and pid.isdigit() and not _alive(int(pid)):
            mark_interrupted(study, trial.number)


def mark_interrupted(study, number: int) -> None:
    import optuna

    trial = study.get_trials(deepcopy=False)[number]
    from annlab.sweeps.optuna_ids import storage_id

    optuna.trial.Trial(study, storage_id(trial)).set_user_attr(INTERRUPTED_ATTR, True)
    study.tell(number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)


def counted_trials(study) -> int:
    """Trials that count toward n_trials: all but waiting and interrupted ones."""
    import optuna

    states = optuna.trial.TrialState
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.state != states.WAITING and not (t.state == states.FAIL and t.user_attrs.get(INTERRUPTED_ATTR))
    )


def tell(study, trial, outcome, metric: str) -> bool:
    """Record one job's outcome: its objective, PRUNED, or FAIL (and say why). True when the
    sampler asks to stop (grid and brute-force samplers, once their space is exhausted)."""
    import optuna

    from annlab.sweeps.outcome import FINISHED, PRUNED

    states = optuna.trial.TrialState
    value, state = None, states.FAIL
    if outcome.status == FINISHED and outcome.value is not None:
        value, state = outcome.value, states.COMPLETE
        log.info(f"Trial {trial.number}: {metric}={value:.4f} {trial.params}")
    elif outcome.status == PRUNED:
        state = states.PRUNED
        log.info(f"Trial {trial.number}: {outcome.reason}")
    else:
        reason = outcome.reason or f"no value for {metric}"
        log.warning(f"Trial {trial.number} failed ({reason}); the search goes on.")
        trial.set_user_attr("failure", reason[:2000])
    try:
        study.tell(trial, value, state=state)
    except RuntimeError as err:
        # `Study.stop()` from the sampler outside `optimize`: the state is stored all the same
        if "Study.stop" not in str(err):
            raise
        return True
    return False
