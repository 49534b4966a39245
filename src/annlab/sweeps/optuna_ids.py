"""The one place annlab reads an Optuna internal: a trial's id in the study's storage.

The sweeper asks the study for trials (ask-and-tell) in its own process; each Hydra job runs in
another (a joblib or Ray worker) and must report its per-epoch values to the same trial so the
pruner can judge it. `optuna.trial.Trial(study, trial_id)` opens that trial, but Optuna keeps
the id private (`Trial._trial_id`, `FrozenTrial._trial_id`) and offers no public lookup by trial
number. tests/test_sweeps.py pins the behaviour relied on: a trial opened by this id from a
fresh study object reports to the trial that was asked.
"""

from __future__ import annotations

from typing import Any


def storage_id(trial: Any) -> int:
    """The storage id of an `optuna.trial.Trial` or `FrozenTrial`."""
    return int(trial._trial_id)
