"""Write `params.yaml` exactly as `dvc exp run` does: DVC's own Hydra composition of `conf/`.

`dvc repro` never composes, it reads the committed file; `annlab params` brings that file
back in line after editing `conf/`, and a test checks the two never drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from annlab.config.loading import CONF_DIR, PARAMS_FILE


def write_params(
    path: str | Path = PARAMS_FILE,
    overrides: Sequence[str] = (),
    config_dir: str | Path = CONF_DIR,
    config_name: str = "config",
) -> Path:
    from dvc.utils.hydra import compose_and_dump

    config_dir = Path(config_dir).resolve()
    compose_and_dump(Path(path), str(config_dir), None, config_name, str(config_dir.parent), list(overrides))
    return Path(path)
