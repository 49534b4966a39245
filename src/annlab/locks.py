"""File locks between annlab processes (`flock`): one process at a time prepares a data set,
creates a sqlite store, owns a configuration's resume state, runs a PostgreSQL cluster.

The kernel drops a lock when its holder dies, however it dies, so none is ever left stale.
Lock files stay in place (empty): deleting one while another process waits on it would let a
third process lock a new file of the same name, and two would hold "the" lock.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on `path` inside the block (the file is created if missing and
    never truncated, so a database file can be its own lock). With `wait=False` the block runs
    at once, given False, when another process holds the lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
