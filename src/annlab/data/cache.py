"""Prepared data for Hydra runs and sweeps: made once per data set + split, then reused.

DVC stages write data/raw and data/processed for the pipeline's own config; a Hydra job may
ask for any data set (`annlab-train -m dataset=digits,iris`), so it prepares what is missing
into `data/cache/<name>-<key>/`, under a file lock so parallel jobs prepare it only once.

The key is what the data really is: the dataset, split and seed settings, the source's
identity (its file's path, size and modification time, or the library that ships it) and the
code that loads and splits it. Edit the CSV or a loader and the next job prepares it anew.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from annlab.code_deps import code_digest
from annlab.config.schema import Config
from annlab.data.sources import load_source, source_identity
from annlab.data.split import META_FILE, save_splits, split_dataset
from annlab.io import atomic_dir
from annlab.locks import file_lock

CACHE_ROOT = Path("data") / "cache"


def data_key(cfg: Config, code: str | None = None) -> str:
    """A hash of everything the prepared data depends on (`code`: the loaders' code digest)."""
    key = {
        "dataset": asdict(cfg.dataset),
        "split": asdict(cfg.split),
        "seed": cfg.seed,
        "source": source_identity(cfg.dataset),
        "code": code if code is not None else code_digest(__name__),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def ensure_prepared(cfg: Config, root: Path = CACHE_ROOT) -> Path:
    """The processed-data folder for `cfg`, loading and splitting the data if not there yet."""
    processed = root / f"{cfg.dataset.name}-{data_key(cfg)}"
    with file_lock(processed.with_suffix(".lock")):
        if not (processed / META_FILE).is_file():
            splits = split_dataset(load_source(cfg.dataset), cfg.split, cfg.seed)
            with atomic_dir(processed) as tmp:
                save_splits(tmp, splits)
    return processed
