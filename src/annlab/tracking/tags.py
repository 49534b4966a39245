"""The names of annlab's MLflow tags, in one place: written by tracking, read by the report,
`annlab compare`, `annlab promote` and `annlab predict`. (No MLflow import here.)"""

# every training run
MODEL_URI = "annlab.model_uri"  # the run's LoggedModel, `models:/m-...`
FAILURE_REASON = "annlab.failure_reason"  # why a run ended FAILED or KILLED
DATASET = "annlab.dataset"
DATA_DIGEST = "annlab.data.digest"
MODEL = "annlab.model"
GIT_DIRTY = "annlab.git.dirty"
RESUMED_FROM_EPOCH = "annlab.resumed_from_epoch"
TENSORBOARD_LOGDIR = "annlab.tensorboard_logdir"
# runs of the Hydra app
HYDRA_OVERRIDES = "annlab.hydra.overrides"
HYDRA_OUTPUT_DIR = "annlab.hydra.output_dir"
# cross-validation (training.cv_folds): each fold's run, a child of the run it scores
CV_FOLD = "annlab.cv.fold"  # the fold's index, 0-based in scikit-learn's split order
CV_FOLDS = "annlab.cv.folds"  # K
# the refit at the end of a cross-validated search: "true" on its run; on the sweep's parent
REFIT = "annlab.refit"
REFIT_TRIAL = "annlab.refit.trial"  # the best trial whose config the refit trains
REFIT_RUN_ID = "annlab.refit.run_id"  # on the parent run
# sweeps: the parent run, and each job's run
SWEEP_ROLE = "annlab.sweep.role"  # "parent" on a sweep's parent run
SWEEP_JOB = "annlab.sweep.job"
SWEEP_DIR = "annlab.sweep.dir"
SWEEP_SWEEPER = "annlab.sweep.sweeper"
SWEEP_LAUNCHER = "annlab.sweep.launcher"
SWEEP_FAILURES = "annlab.sweep.failures"
SWEEP_BEST_RUN_ID = "annlab.sweep.best_run_id"
SWEEP_BEST_JOB = "annlab.sweep.best_job"
SWEEP_BEST_OVERRIDES = "annlab.sweep.best_overrides"
# Optuna searches
OPTUNA_STUDY = "annlab.optuna.study"
OPTUNA_TRIAL = "annlab.optuna.trial"
OPTUNA_STATE = "annlab.optuna.state"  # "PRUNED" on a pruned trial's run
OPTUNA_PRUNED_AT_EPOCH = "annlab.optuna.pruned_at_epoch"
OPTUNA_STORAGE = "annlab.optuna.storage"
OPTUNA_BEST_TRIAL = "annlab.optuna.best_trial"
OPTUNA_BEST_RUN_ID = "annlab.optuna.best_run_id"
OPTUNA_BEST_OVERRIDES = "annlab.optuna.best_overrides"
# registered model versions (`annlab promote`)
VERSION_RUN_ID = "annlab.run_id"
VERSION_CHOSEN_FROM = "annlab.chosen_from"
VERSION_CANDIDATES = "annlab.candidates"
VERSION_METRIC = "annlab.metric"
VERSION_METRIC_VALUE = "annlab.metric_value"
VERSION_DIRECTION = "annlab.direction"
