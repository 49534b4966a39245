"""`annlab-train`: the Hydra app. Composes conf/ with command-line overrides, prepares the data
if needed, trains, evaluates, and logs to MLflow exactly as the DVC stages do.

    annlab-train optimizer.learning_rate=0.03 model.n_hidden=3
    annlab-train -m model.n_hidden=1,2,3 optimizer.learning_rate=1e-3,3e-3

Each job writes models/ and reports/ into its Hydra output folder and returns the objective
(`objective.metric`, by `objective.direction`) for sweepers such as Optuna.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import traceback
from pathlib import Path

from omegaconf import DictConfig

from annlab.errors import AnnlabError, debug_requested
from annlab.stages.common import EXIT_INTERRUPTED, exit_without_teardown
from annlab.sweeps.outcome import FAILED, FINISHED, PRUNED, JobResult, one_line
from annlab.tracking.runs import flush_logging

CONFIG_DIR_ENV = "ANNLAB_CONFIG_DIR"


def find_config_dir() -> Path:
    """conf/ of the project in the working directory (or ANNLAB_CONFIG_DIR), as an absolute
    path: a relative `config_path` would point into site-packages for a non-editable install."""
    return Path(os.environ.get(CONFIG_DIR_ENV) or Path.cwd() / "conf").resolve()


def start_clean() -> None:
    """Drop the previous job's Keras graphs and memory: the joblib launcher runs several jobs
    in one worker process (hydra #2187). Training sets the seeds again for every job."""
    if "keras" in sys.modules:
        import keras

        keras.backend.clear_session(free_memory=True)
        # a new model per job: TensorFlow's "retracing" warning is expected, not a problem
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
    gc.collect()


def run_job(tree: DictConfig) -> JobResult:
    """One Hydra job: validate first (before TensorFlow), then prepare, train, evaluate."""
    from hydra.core.hydra_config import HydraConfig

    from annlab.config.schema import validate
    from annlab.data.cache import ensure_prepared
    from annlab.io import read_json
    from annlab.stages.evaluate import evaluate_stage
    from annlab.stages.train import train
    from annlab.sweeps.optuna_trial import Refit, TrialLink, finish_trial, pruning_callback
    from annlab.tracking import tags
    from annlab.tracking.sweeps import PARENT_ENV, mark_pruned

    cfg = validate(tree)
    start_clean()
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    data_dir = ensure_prepared(cfg)
    run_tags = {
        tags.HYDRA_OVERRIDES: " ".join(hydra_cfg.overrides.task) or "(none)",
        tags.HYDRA_OUTPUT_DIR: str(out_dir),
    }
    if in_sweep():
        run_tags[tags.SWEEP_JOB] = str(hydra_cfg.job.num)
        run_tags[tags.SWEEP_DIR] = str(Path(hydra_cfg.sweep.dir).resolve())
        if cfg.tracking.run_name is None:
            run_tags["mlflow.runName"] = f"job-{hydra_cfg.job.num}"
    link = TrialLink.from_env()  # set when annlab's Optuna sweeper launched this job
    refit = Refit.from_env()  # set on the refit job that ends a cross-validated search
    # a trial of a cross-validated search only cross-validates: its score is the CV mean, and
    # the sweeper refits the best configuration on the whole training split at the end
    cv_only = link is not None and cfg.training.cv_folds > 0
    callbacks, trial = [], None
    if link is not None:
        trial = link.open(hydra_cfg.sweeper.get("pruner"))
        run_tags.update({tags.OPTUNA_STUDY: trial.study.study_name, tags.OPTUNA_TRIAL: str(trial.number)})
        if cfg.tracking.run_name is None:
            run_tags["mlflow.runName"] = f"trial-{trial.number}"
        if not cv_only:  # folds are scored on their held-out rows, not pruned by epoch
            callbacks.append(pruning_callback(trial, cfg.objective.metric))
    if refit is not None:
        run_tags.update({tags.REFIT: "true", tags.REFIT_TRIAL: str(refit.trial)})
        if cfg.tracking.run_name is None:
            run_tags["mlflow.runName"] = "refit"
    reports = out_dir / "reports"
    evaluated: list[str] = []

    def evaluate(model_dir: Path) -> Path | None:
        """Scores on the test split, written before the training's run ends, which logs them
        (a pruned trial's model is not scored)."""
        if callbacks and callbacks[0].pruned_at_epoch is not None:  # Optuna's pruning callback
            return None
        evaluated.append(evaluate_stage(cfg, data_dir=data_dir, model_dir=model_dir, reports_dir=reports))
        return reports

    print(
        train(
            cfg,
            data_dir=data_dir,
            out_dir=out_dir / "models",
            extra_tags=run_tags,
            parent_run_id=os.environ.get(PARENT_ENV) or None,
            callbacks=callbacks,
            cv_only=cv_only,
            objective_override=refit.objective if refit is not None else None,
            evaluate=None if cv_only else evaluate,  # a trial of a CV search has no model to score
        ),
        flush=True,
    )
    run_info = read_json(out_dir / "models" / "run.json")
    run_id = run_info.get("run_id")
    if trial is not None:
        pruned = finish_trial(trial, callbacks[0] if callbacks else None, run_id)
        if pruned is not None:
            if run_id:
                mark_pruned(run_id, callbacks[0].pruned_at_epoch)
            return JobResult(None, PRUNED, pruned, run_id)
    for line in evaluated:  # none for a trial of a cross-validated search
        print(line, flush=True)
    return JobResult(run_info["objective"]["value"], FINISHED, run_id=run_id)


def in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.get().mode == RunMode.MULTIRUN


def task(tree: DictConfig) -> float | None:
    """Hydra task function. A single run: a user error is one line and exit 1. In a sweep a job
    never raises (the other jobs must run): it records and returns its `JobResult`, FAILED with
    the reason, and the sweep ends non-zero once all jobs are done (annlab.sweeps.outcome)."""
    from hydra.core.hydra_config import HydraConfig

    from annlab.sweeps.outcome import record_this_job

    if in_sweep():
        record_this_job(None)  # "running": a job whose process is killed is seen as failed
    try:
        result = run_job(tree)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (annlab.signals): the run is KILLED already
        if debug_requested():
            raise
        print(
            "annlab-train: interrupted; the MLflow run is marked KILLED. Rerun the same command "
            "to resume from the last completed epoch.",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    except Exception as err:  # SystemExit stops the sweep itself
        if debug_requested() or not (in_sweep() or isinstance(err, AnnlabError)):
            raise
        reason = str(err) if isinstance(err, AnnlabError) else one_line(err)
        if not isinstance(err, AnnlabError):  # a bug: keep its traceback beside the job's output
            path = Path(HydraConfig.get().runtime.output_dir) / "traceback.txt"
            path.write_text("".join(traceback.format_exception(err)))
            reason += f" (traceback in {path})"
        print(f"annlab-train: error: {reason}", file=sys.stderr, flush=True)
        if not in_sweep():
            sys.exit(1)
        result = JobResult(None, FAILED, reason)
    if in_sweep():
        record_this_job(result)
    return result


def main() -> None:
    import hydra

    config_dir = find_config_dir()
    if not (config_dir / "config.yaml").is_file():
        print(
            f"annlab-train: error: '{config_dir}/config.yaml' not found: run from the project "
            f"root (the folder holding conf/) or set {CONFIG_DIR_ENV}.",
            file=sys.stderr,
        )
        sys.exit(1)
    overrides = sys.argv[1:]
    if overrides and not any(arg.startswith("-") for arg in overrides):
        _check_single_run(overrides, config_dir)
    try:
        hydra.main(version_base="1.3", config_path=str(config_dir), config_name="config")(task)()
    finally:
        cv = sys.modules.get("annlab.training.cv")  # loaded only when folds were fitted
        if cv is not None:
            cv.stop_workers()  # the fold processes a search kept for its trials
    exit_without_teardown(flush=flush_logging)  # all is written and every run has ended


def _check_single_run(overrides: list[str], config_dir: Path) -> None:
    """Compose and validate a single run before Hydra starts: a bad override or value is one
    line and no output folder, instead of Hydra's multi-line report after creating one."""
    from annlab.config.loading import compose_tree
    from annlab.config.schema import validate

    try:
        validate(compose_tree(overrides, config_dir))
    except AnnlabError as err:
        if debug_requested():
            raise
        print(f"annlab-train: error: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
