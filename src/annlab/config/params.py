"""Write `params.yaml` as the composition of `conf/` (what `dvc exp run` would write)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

from annlab.config.loading import CONF_DIR, PARAMS_FILE, compose_tree
from annlab.io import atomic_file

HEADER = (
    "# Generated from conf/ (the source of truth): edit conf/, then run `annlab params`,\n"
    "# or let `dvc exp run -S key=value` rewrite this file. Stages run by DVC read it.\n"
)


def render_params(overrides: Sequence[str] = (), config_dir: str | Path = CONF_DIR) -> str:
    tree = compose_tree(overrides, config_dir)
    return OmegaConf.to_yaml(tree, resolve=True)


def write_params(path: str | Path = PARAMS_FILE, overrides: Sequence[str] = (),
                 config_dir: str | Path = CONF_DIR) -> Path:
    path = Path(path)
    with atomic_file(path) as handle:
        handle.write(HEADER + render_params(overrides, config_dir))
    return path
