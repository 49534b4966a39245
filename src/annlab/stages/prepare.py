"""DVC stage `prepare`: load the configured data set into data/raw (arrays + meta)."""

from __future__ import annotations

from pathlib import Path

from annlab.config.schema import Config
from annlab.data.dataset import save_dataset
from annlab.data.sources import load_source
from annlab.io import atomic_dir
from annlab.stages.common import stage_main


def prepare(cfg: Config, out_dir: str | Path | None = None) -> str:
    dataset = load_source(cfg.dataset)
    target = Path(out_dir or cfg.paths.raw)
    with atomic_dir(target) as tmp:
        save_dataset(tmp, dataset)
    n_test = 0 if dataset.X_test is None else len(dataset.X_test)
    return (
        f"prepare: {dataset.meta.name} ({dataset.meta.task}), {len(dataset.X)} rows"
        f"{f' + {n_test} test rows' if n_test else ''}, input shape "
        f"{tuple(dataset.meta.input_shape)} -> {target}"
    )


def main() -> None:
    stage_main("prepare", prepare)


if __name__ == "__main__":
    main()
