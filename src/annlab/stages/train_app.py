"""`annlab-train`: the Hydra app. Composes conf/ with command-line overrides, prepares the data
if needed, trains, evaluates, and logs to MLflow exactly as the DVC stages do.

    annlab-train optimizer.learning_rate=0.03 model.n_hidden=3
    annlab-train -m model.n_hidden=1,2,3 optimizer.learning_rate=1e-3,3e-3

Each job writes models/ and reports/ into its Hydra output folder and returns the objective
(`objective.metric`, by `objective.direction`) for sweepers such as Optuna.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

from omegaconf import DictConfig

from annlab.errors import AnnlabError
from annlab.stages.common import debug_requested

CONFIG_DIR_ENV = "ANNLAB_CONFIG_DIR"


def find_config_dir() -> Path:
    """conf/ of the project in the working directory (or ANNLAB_CONFIG_DIR), as an absolute
    path: a relative `config_path` would point into site-packages for a non-editable install."""
    return Path(os.environ.get(CONFIG_DIR_ENV) or Path.cwd() / "conf").resolve()


def run_job(tree: DictConfig) -> float | None:
    """One Hydra job: validate first (before TensorFlow), then prepare, train, evaluate."""
    from hydra.core.hydra_config import HydraConfig

    from annlab.config.schema import validate
    from annlab.data.cache import ensure_prepared
    from annlab.stages.evaluate import evaluate_stage
    from annlab.stages.train import train

    cfg = validate(tree)
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    data_dir = ensure_prepared(cfg)
    tags = {"annlab.hydra.overrides": " ".join(hydra_cfg.overrides.task) or "(none)",
            "annlab.hydra.output_dir": str(out_dir)}
    if hydra_cfg.mode is not None and hydra_cfg.mode.name == "MULTIRUN":
        tags["annlab.sweep.job"] = str(hydra_cfg.job.num)
        tags["annlab.sweep.dir"] = str(Path(hydra_cfg.sweep.dir).resolve())
    print(train(cfg, data_dir=data_dir, out_dir=out_dir / "models", extra_tags=tags,
                parent_run_id=os.environ.get("ANNLAB_PARENT_RUN_ID") or None), flush=True)
    print(evaluate_stage(cfg, data_dir=data_dir, model_dir=out_dir / "models",
                         reports_dir=out_dir / "reports"), flush=True)
    from annlab.io import read_json

    return read_json(out_dir / "models" / "run.json")["objective"]["value"]


def task(tree: DictConfig) -> float | None:
    """Hydra task function: a user error is one line; in a sweep the job fails, not the sweep."""
    from hydra.core.hydra_config import HydraConfig

    try:
        return run_job(tree)
    except AnnlabError as err:
        if debug_requested():
            raise
        print(f"annlab-train: error: {err}", file=sys.stderr, flush=True)
        mode = HydraConfig.get().mode
        if mode is not None and mode.name == "MULTIRUN":
            return math.nan  # sweepers (Optuna) record the trial as failed and go on
        sys.exit(1)


def main() -> None:
    import hydra

    config_dir = find_config_dir()
    if not (config_dir / "config.yaml").is_file():
        print(f"annlab-train: error: '{config_dir}/config.yaml' not found: run from the project "
              f"root (the folder holding conf/) or set {CONFIG_DIR_ENV}.", file=sys.stderr)
        sys.exit(1)
    hydra.main(version_base="1.3", config_path=str(config_dir), config_name="config")(task)()


if __name__ == "__main__":
    main()
