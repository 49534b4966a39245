"""Atomic writes: an output is either the previous complete version or the new complete one.

DVC caches whatever a stage leaves behind, so a crash must never leave half a file or half a
folder in place. Everything is written to a temporary sibling, flushed to disk (fsync), and
renamed into place; a folder that already exists is swapped with the new one in a single step
where the system can (Linux `renameat2(RENAME_EXCHANGE)`), so there is no moment when neither
the old nor the new version is there. The sibling is created as a plain `open()` / `mkdir()`
would create the target (0o666 / 0o777 less the umask), not private like `mkstemp` /
`mkdtemp` (0o600 / 0o700): reports and predictions must be readable by whoever could read a
file written the ordinary way.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import secrets
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


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
        _fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists() and _exchange(tmp, target):
        shutil.rmtree(tmp, ignore_errors=True)  # now the old version
    else:
        old = None
        if target.exists():  # no atomic swap here: a moment with the old one renamed away
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(target.parent)


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
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux `renameat2` with RENAME_EXCHANGE, glibc >= 2.28);
    False where the system or file system cannot, so the caller falls back to two renames."""
    if not sys.platform.startswith("linux"):
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _fsync_tree(folder: Path) -> None:
    """Every file under `folder`, and the folders themselves, on disk before the rename."""
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        elif path.is_dir():
            _fsync_dir(path)
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems refuse fsync on folders
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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
    """The arrays of an `.npz` file (never through pickle); a damaged file is one clear error."""
    import zipfile

    from annlab.errors import AnnlabError

    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        first = " ".join(str(err).split())[:200] or type(err).__name__
        raise AnnlabError(
            f"'{path}' is corrupt or not an .npz file ({first}): rerun the stage that writes it "
            "(`dvc repro`)."
        ) from None
