"""DVC stage `split`: train / valid / test splits and the scaler fitted on train only."""

from __future__ import annotations

from pathlib import Path

from annlab.config.schema import Config
from annlab.data.dataset import load_dataset_folder
from annlab.data.split import save_splits, split_dataset
from annlab.io import atomic_dir
from annlab.stages.common import stage_main


def split(cfg: Config, raw_dir: str | Path | None = None, out_dir: str | Path | None = None) -> str:
    dataset = load_dataset_folder(raw_dir or cfg.paths.raw)
    splits = split_dataset(dataset, cfg.split, cfg.seed)
    target = Path(out_dir or cfg.paths.processed)
    with atomic_dir(target) as tmp:
        save_splits(tmp, splits)
    sizes = splits.sizes()
    return (
        f"split: train {sizes['train']}, valid {sizes['valid']}, test {sizes['test']} "
        f"({cfg.split.strategy}), scaling {splits.scaler['kind']} -> {target}"
    )


def main() -> None:
    stage_main("split", split)


if __name__ == "__main__":
    main()
