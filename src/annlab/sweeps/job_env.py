"""Settings a sweep hands to every job's process, and one-line errors for sweep code.

Both are Hydra's business, not MLflow's: the sweepers (annlab's Optuna sweeper) and the sweep
callbacks (outcomes, the MLflow parent run) use them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from omegaconf import DictConfig, open_dict, read_write

from annlab.errors import EXIT_USER_ERROR, AnnlabError, debug_requested

T = TypeVar("T")


def quote_override_value(value: str) -> str:
    """A string as a quoted value of Hydra's override grammar (URIs hold `:` and `/`)."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise AnnlabError(f"Cannot pass {value!r} to the sweep's jobs: it holds both kinds of quotes.")


def set_job_env(config: DictConfig, env: dict[str, str]) -> None:
    """Make Hydra set `env` in every job's process, whatever the launcher.

    Launchers compose each job from the sweep's `hydra.overrides.hydra` plus the job's own
    overrides, in the job's process or on the driver before shipping it; `hydra.job.env_set`
    is applied by Hydra's `run_job` inside the job process itself.
    """
    with read_write(config.hydra), open_dict(config.hydra):
        hydra_overrides = list(config.hydra.overrides.hydra)
        for key, value in env.items():
            hydra_overrides.append(f"++hydra.job.env_set.{key}={quote_override_value(value)}")
        config.hydra.overrides.hydra = hydra_overrides


def one_line_errors(action: Callable[[], T]) -> T:
    """Project style: a user error is one line and a non-zero exit, not Hydra's traceback."""
    try:
        return action()
    except AnnlabError as err:
        if debug_requested():
            raise
        print(f"annlab-train: error: {err}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USER_ERROR)
