"""Hyperparameter searches: the job's side of annlab's Optuna sweeper (pruning, trial links).

The sweeper itself is a Hydra plugin (`hydra_plugins.annlab_optuna_sweeper`); the MLflow parent
run of every sweep is `annlab.tracking.sweeps`.
"""
