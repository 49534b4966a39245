"""SIGINT and SIGTERM as exceptions, held back while training writes its epoch backup.

Python raises `KeyboardInterrupt` wherever the main thread happens to be: in the middle of
Keras' `BackupAndRestore` writing its checkpoint, that leaves a half-written backup that the
rerun cannot load. While a training is running, the handler only records the signal; a Keras
callback placed after the backup raises it at the next batch or epoch boundary (milliseconds
later). Outside training the signal is raised at once.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so the same cleanup runs."""


_holding = False
_pending: int | None = None


def _raise(signum: int) -> None:
    if signum == signal.SIGTERM:
        raise Terminated(f"signal {signum}")
    raise KeyboardInterrupt


def _handler(signum, frame):  # noqa: ARG001
    global _pending
    if _holding:
        _pending = signum
        return
    _raise(signum)


def raise_pending() -> None:
    """Raise a signal that arrived while held, if any."""
    global _pending
    if _pending is not None:
        signum, _pending = _pending, None
        _raise(signum)


@contextlib.contextmanager
def interrupts_as_exceptions() -> Iterator[None]:
    """Install the handlers (main thread only) and restore the previous ones afterwards."""
    global _holding, _pending
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        # ValueError: not the main thread (e.g. a Ray or joblib worker thread)
        with contextlib.suppress(ValueError):
            previous[sig] = signal.signal(sig, _handler)
    try:
        yield
    finally:
        _holding, _pending = False, None
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def safe_interrupt_callback():
    """A Keras callback (put it last) that holds signals during `fit` and raises them at batch
    and epoch ends, after the epoch's metrics and backup are written."""
    import keras

    class SafeInterrupt(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            global _holding
            _holding = True

        def on_train_batch_end(self, batch, logs=None):
            raise_pending()

        def on_epoch_end(self, epoch, logs=None):
            raise_pending()

        def on_train_end(self, logs=None):
            global _holding
            _holding = False
            raise_pending()

    return SafeInterrupt()
