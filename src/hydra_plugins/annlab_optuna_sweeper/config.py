"""The sweeper's settings, registered as `hydra/sweeper=annlab_optuna` (importing this module is
cheap: Hydra imports every plugin module at start-up, so Optuna is imported only to sweep).

No `from __future__ import annotations` here: Hydra's plugin scan executes this module before it
is in sys.modules, where dataclasses cannot resolve string annotations.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class AnnlabOptunaSweeperConf:
    _target_: str = "hydra_plugins.annlab_optuna_sweeper.sweeper.AnnlabOptunaSweeper"
    # Study name in the storage; null: the config's `experiment_name`.
    study_name: str | None = None
    # An Optuna RDB URL; null: sqlite file multirun/optuna.db under the working directory.
    # Rerunning the same search with the same study and storage resumes it.
    storage: str | None = None
    # Total trials the study should hold (finished, pruned or failed; interrupted ones are redone).
    n_trials: int = 20
    # Trials launched at once; null: the launcher's n_jobs (joblib), else 1.
    n_jobs: int | None = None
    # Any Optuna sampler / pruner by `_target_` (a whole node: set both in a search file, as in
    # conf/hparams_search/). Sampler null: TPESampler seeded with the config's `seed`;
    # pruner null: no pruning.
    sampler: Any = None
    pruner: Any = None
    # Search space in Hydra's override grammar: key -> `range(0, 4)`, `choice(a, b)`,
    # `interval(0.1, 0.5)`, `tag(log, interval(3e-4, 3e-2))`, `tag(int, interval(1, 99))`,
    # or a fixed value. Sweeps given on the command line join (and override) it.
    params: dict[str, str] = field(default_factory=dict)
    # Where the best params are written; null: <paths.reports>/hparams_search/<study>_best.yaml
    best_params_file: str | None = None
    # When the trials cross-validate (training.cv_folds >= 2): at the end, train the best
    # configuration on the whole training split and evaluate it on the test split, as one more
    # job (a child run tagged annlab.refit=true), as RandomizedSearchCV's refit=True does.
    refit: bool = True


ConfigStore.instance().store(
    group="hydra/sweeper", name="annlab_optuna", node=AnnlabOptunaSweeperConf, provider="annlab"
)
