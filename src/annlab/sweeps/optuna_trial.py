"""The job's side of an Optuna search: which trial this job is, and pruning it per epoch.

annlab's Optuna sweeper (`hydra/sweeper=annlab_optuna`) asks the study for a trial, then
launches the job with the trial's storage, study and id in `hydra.job.env_set`; Hydra sets them
in the job's own process whatever the launcher (in-process, joblib workers, Ray workers). The
job opens the same trial from the shared storage, reports the objective's validation metric
after every epoch, and stops training when the study's pruner says so; it then raises
`optuna.TrialPruned`, which reaches the sweeper as the job's result.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from annlab.errors import AnnlabError

STORAGE_ENV = "ANNLAB_OPTUNA_STORAGE"
STUDY_ENV = "ANNLAB_OPTUNA_STUDY"
TRIAL_ID_ENV = "ANNLAB_OPTUNA_TRIAL_ID"
# the refit job a cross-validated search ends with: the best trial's number and its CV score
REFIT_TRIAL_ENV = "ANNLAB_REFIT_TRIAL"
REFIT_OBJECTIVE_ENV = "ANNLAB_REFIT_OBJECTIVE"


def open_storage(url: str):
    """The study's RDB storage; sqlite waits for a lock instead of failing at once, since
    parallel jobs report their epochs to the same file."""
    import optuna

    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)


@dataclass
class TrialLink:
    """One trial of a stored study, as the sweeper handed it to this job."""

    storage: str
    study_name: str
    trial_id: int

    @classmethod
    def from_env(cls) -> TrialLink | None:
        """The trial this job runs, or None when no annlab Optuna sweeper launched it."""
        if not os.environ.get(TRIAL_ID_ENV):
            return None
        try:
            return cls(os.environ[STORAGE_ENV], os.environ[STUDY_ENV], int(os.environ[TRIAL_ID_ENV]))
        except (KeyError, ValueError) as err:
            raise AnnlabError(
                f"Incomplete Optuna trial settings in the environment ({err}): set "
                f"{STORAGE_ENV}, {STUDY_ENV} and {TRIAL_ID_ENV} together, or none of them."
            ) from None

    def open(self, pruner_config: Any = None):
        """The live `optuna.trial.Trial`, with the study's pruner built from the sweeper config
        (a pruner is not stored with the study)."""
        import optuna
        from hydra.utils import instantiate

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        pruner = instantiate(pruner_config) if pruner_config else optuna.pruners.NopPruner()
        study = optuna.load_study(
            study_name=self.study_name, storage=open_storage(self.storage), pruner=pruner
        )
        return optuna.trial.Trial(study, self.trial_id)


@dataclass
class Refit:
    """This job is the refit of a cross-validated search: the best trial's configuration
    trained on the whole training split, ranked by that trial's CV score."""

    trial: int
    objective: float

    @classmethod
    def from_env(cls) -> Refit | None:
        if not os.environ.get(REFIT_TRIAL_ENV):
            return None
        try:
            return cls(int(os.environ[REFIT_TRIAL_ENV]), float(os.environ[REFIT_OBJECTIVE_ENV]))
        except (KeyError, ValueError) as err:
            raise AnnlabError(
                f"Incomplete refit settings in the environment ({err}): set {REFIT_TRIAL_ENV} "
                f"and {REFIT_OBJECTIVE_ENV} together, or neither."
            ) from None

    def env(self) -> dict[str, str]:
        return {REFIT_TRIAL_ENV: str(self.trial), REFIT_OBJECTIVE_ENV: repr(float(self.objective))}


def pruning_callback(trial, monitor: str):
    """A Keras callback reporting `monitor` after each epoch and stopping when pruned."""
    import keras

    class OptunaPruning(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.pruned_at_epoch: int | None = None
            self.last_value: float | None = None

        def on_epoch_end(self, epoch, logs=None):
            value = float((logs or {}).get(monitor, math.nan))  # a missing one: training fails
            self.last_value = value
            if not math.isfinite(value):
                return  # the non-finite-loss guard fails the run with the reason
            trial.report(value, step=epoch)
            if trial.should_prune():
                self.pruned_at_epoch = epoch + 1
                self.model.stop_training = True

    return OptunaPruning()


def finish_trial(trial, callback, run_id: str | None) -> str | None:
    """Link the trial to its MLflow run; for a pruned trial, say why (None if not pruned)."""
    if run_id:
        trial.set_user_attr("mlflow_run_id", run_id)
    if callback is None or callback.pruned_at_epoch is None:
        return None
    return f"trial {trial.number} pruned after epoch {callback.pruned_at_epoch} ({callback.last_value:.4g})"
