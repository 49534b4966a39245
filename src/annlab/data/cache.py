"""Prepared data for Hydra runs and sweeps: made once per data set + split, then reused.

DVC stages write data/raw and data/processed for the pipeline's own config; a Hydra job may
ask for any data set (`annlab-train -m dataset=digits,iris`), so it prepares what is missing
into `data/cache/<fingerprint>/`, under a file lock so parallel jobs prepare it only once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from annlab.config.schema import Config

CACHE_ROOT = Path("data") / "cache"


def data_fingerprint(cfg: Config) -> str:
    key = {"dataset": asdict(cfg.dataset), "split": asdict(cfg.split), "seed": cfg.seed}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_prepared(cfg: Config, root: Path = CACHE_ROOT) -> Path:
    """The processed-data folder for `cfg`, preparing and splitting it if not there yet."""
    from annlab.stages.prepare import prepare
    from annlab.stages.split import split

    folder = root / f"{cfg.dataset.name}-{data_fingerprint(cfg)}"
    processed = folder / "processed"
    with _locked(folder.with_suffix(".lock")):
        if not (processed / "meta.json").is_file():
            prepare(cfg, out_dir=folder / "raw")
            split(cfg, raw_dir=folder / "raw", out_dir=processed)
    return processed
