"""Atomic writes: an output is either the previous complete version or the new complete one.

DVC caches whatever a stage leaves behind, so a crash must never leave half a file or half a
folder in place. Everything is written to a temporary sibling and renamed into place.
The sibling is created as a plain `open()` / `mkdir()` would create the target (0o666 / 0o777
less the umask), not private like `mkstemp` / `mkdtemp` (0o600 / 0o700): reports and
predictions must be readable by whoever could read a file written the ordinary way.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def _new_sibling(target: Path, create: Callable[[Path], T]) -> tuple[Path, T]:
    """Create a fresh hidden sibling of `target` with `create` (which must refuse to reuse a
    name), retrying on the rare name clash."""
    for _ in range(100):
        path = target.with_name(f".{target.name}.tmp-{secrets.token_hex(4)}")
        try:
            return path, create(path)
        except FileExistsError:
            continue
    raise FileExistsError(f"No free temporary name beside {target}")


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder that replaces `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp, _ = _new_sibling(target, lambda path: os.mkdir(path, 0o777))  # the umask applies
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
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    tmp, fd = _new_sibling(target, lambda path: os.open(path, flags, 0o666))  # the umask applies
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


def save_arrays(path: str | Path, **arrays: np.ndarray) -> None:
    """Plain `.npz` (no object arrays), so loading never needs pickle."""
    with atomic_file(path, "wb") as handle:
        np.savez(handle, **arrays)


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}
