"""Where a `Config` comes from: the committed `params.yaml` (DVC stages) or `conf/` (Hydra)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from annlab.config.schema import Config, validate
from annlab.errors import AnnlabError

PARAMS_FILE = "params.yaml"
CONF_DIR = "conf"


def load_params(path: str | Path = PARAMS_FILE) -> Config:
    """Read the resolved config DVC stages run on.

    DVC writes `params.yaml` from `conf/` on `dvc exp run` only; `dvc repro` uses the file as
    it is. Reading it (not re-composing `conf/`) keeps each stage on exactly the params DVC
    tracked for it.
    """
    path = Path(path)
    if not path.is_file():
        raise AnnlabError(
            f"Config file '{path}' not found: run stages from the project root, or create it with "
            "`dvc exp run` (which composes conf/ into params.yaml)."
        )
    try:
        tree = OmegaConf.load(path)
    except (OmegaConfBaseException, OSError, ValueError, yaml.YAMLError) as err:
        first = " ".join(str(err).split())[:200] if str(err) else type(err).__name__
        raise AnnlabError(
            f"Config file '{path}' is not valid YAML ({first}): fix or regenerate it."
        ) from None
    return validate(tree)


def compose_config(
    overrides: Sequence[str] = (), config_dir: str | Path = CONF_DIR, config_name: str = "config"
) -> Config:
    """Compose `conf/` with Hydra overrides, as DVC and the Hydra app do, then validate."""
    return validate(compose_tree(overrides, config_dir, config_name))


def compose_tree(
    overrides: Sequence[str] = (), config_dir: str | Path = CONF_DIR, config_name: str = "config"
):
    """The raw composition (a DictConfig), exactly what DVC writes to `params.yaml`."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    config_dir = Path(config_dir).resolve()
    if not (config_dir / f"{config_name}.yaml").is_file():
        raise AnnlabError(
            f"Config '{config_dir / config_name}.yaml' not found: run from the project root "
            "(the folder holding conf/) or set ANNLAB_CONFIG_DIR."
        )
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            return compose(config_name=config_name, overrides=list(overrides))
    except HydraException as err:
        raise AnnlabError(_hydra_message(err)) from None


def _hydra_message(err: Exception) -> str:
    """Hydra's multi-line composition errors as one line that keeps the available options."""
    lines = []
    for line in str(err).splitlines():
        if line.strip().startswith("Config search path"):
            break
        if line.strip():
            lines.append(line.strip())
    text = " ".join(lines) or type(err).__name__
    head, _, options = text.partition("Available options in ")
    if options:
        group, _, names = options.partition(":")
        text = f"{head.strip()} Available {group.strip(chr(39))}: {', '.join(names.split())}."
    return f"Cannot compose conf/: {text}"
