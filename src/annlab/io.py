"""Atomic writes: an output is either the previous complete version or the new complete one.

DVC caches whatever a stage leaves behind, so a crash must never leave half a file or half a
folder in place. Everything is written to a temporary sibling and renamed into place.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder that replaces `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(target: str | Path, mode: str = "w") -> Iterator[Any]:
    """Open a temporary sibling of `target` for writing; rename it into place on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: str | Path, data: Any) -> None:
    with atomic_file(path) as handle:
        json.dump(data, handle, indent=2, sort_keys=False)
        handle.write("\n")


def read_json(path: str | Path) -> Any:
    with open(path) as handle:
        return json.load(handle)


def write_csv(path: str | Path, columns: dict[str, np.ndarray]) -> None:
    """Named columns as CSV, floats at full precision (a float32 reads back exactly), written
    atomically: prediction tables of `evaluate` and `annlab predict` alike."""
    import csv

    names = list(columns)
    values = [np.asarray(columns[name]) for name in names]
    with atomic_file(path) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(names)
        for row in zip(*values, strict=True):
            writer.writerow([_cell(v) for v in row])


def _cell(value: Any) -> Any:
    if isinstance(value, np.floating | float):
        return repr(float(value))
    return value.item() if isinstance(value, np.generic) else value


def save_arrays(path: str | Path, **arrays: np.ndarray) -> None:
    """Plain `.npz` (no object arrays), so loading never needs pickle."""
    with atomic_file(path, "wb") as handle:
        np.savez(handle, **arrays)


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}
