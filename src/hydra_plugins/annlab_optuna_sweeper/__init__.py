"""annlab's Optuna sweeper for Hydra (`hydra/sweeper=annlab_optuna`): a study kept in a
database (resumable, shareable by several machines), per-epoch pruning, failed trials recorded
and skipped, best params to MLflow and reports/. Hydra finds it by scanning `hydra_plugins`."""
