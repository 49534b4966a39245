"""MLflow work in a forked helper process, so that importing MLflow overlaps the stage's work.

Importing MLflow and opening its store cost seconds of single-threaded Python; so does
importing TensorFlow (evaluate) or drawing figures with matplotlib (report). In one process they
run one after the other, and a thread does not overlap them (both hold the GIL). A helper forked
before either starts imports MLflow on the other core, then runs the functions it is handed and
sends back their results. Where `fork` is not the safe default (macOS, Windows), or TensorFlow
is already imported, the work simply runs in this process.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from annlab.config.schema import TrackingConfig
from annlab.errors import AnnlabError

T = TypeVar("T")


class MlflowHelper:
    """Start with `MlflowHelper(tracking)` as early as possible; `post(fn, *args)` work that
    needs no answer, `call(fn, *args)` for an answer (after everything posted before it)."""

    def __init__(self, tracking: TrackingConfig) -> None:
        self.tracking = tracking
        self._conn: Any = None
        self._process: Any = None
        # Fork only a process that runs one thread and has not loaded TensorFlow (whose thread
        # pools do not survive a fork): a DVC stage or `annlab-train`, not a joblib or Ray worker.
        single = threading.active_count() == 1
        if sys.platform.startswith("linux") and "tensorflow" not in sys.modules and single:
            context = multiprocessing.get_context("fork")
            self._conn, child_end = context.Pipe()
            self._process = context.Process(
                target=_serve, args=(child_end, self._conn, tracking), name="annlab-mlflow", daemon=True
            )
            self._process.start()
            child_end.close()

    @property
    def forked(self) -> bool:
        return self._process is not None

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """`fn(*args)` without waiting for it; its error raises at the next `call`. (Without a
        helper process it runs at once, here.)"""
        if self._process is None:
            self.call(fn, *args)
            return
        self._conn.send((fn, args, False))

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` with MLflow configured for `tracking`; its errors (and those of work
        posted before it) raise here."""
        if self._process is None:
            from annlab.tracking import store

            store.configure(self.tracking)
            return fn(*args)
        self._conn.send((fn, args, True))
        try:
            ok, value, posted_error = self._conn.recv()
        except EOFError:
            raise AnnlabError(
                "The MLflow helper process ended unexpectedly; check `MLFLOW_TRACKING_URI` and rerun."
            ) from None
        if posted_error or not ok:
            raise AnnlabError(posted_error or value)
        return value

    def close(self) -> None:
        if self._process is not None:
            self._conn.close()  # the helper reads end-of-file and exits
            self._process.join(timeout=60)
            self._process = None

    def __enter__(self) -> MlflowHelper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def helper_for(
    tracking: TrackingConfig, run_id: str | None
) -> contextlib.AbstractContextManager[MlflowHelper | None]:
    """A started helper when there is a run to log to; otherwise nothing is started (None)."""
    return MlflowHelper(tracking) if run_id else contextlib.nullcontext()


def _serve(conn, parent_end, tracking: TrackingConfig) -> None:
    """The helper's loop: configure MLflow once, then run each (fn, args, reply) received. Only
    calls are answered; the first error of posted work is sent with the next answer."""
    parent_end.close()  # so that the parent exiting, however it exits, ends this loop
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    setup_error = None
    try:
        from annlab.tracking import store

        store.configure(tracking)
    except BaseException as err:  # reported on the first call, in the parent
        setup_error = _one_line(err)
    posted_error = None
    while True:
        try:
            fn, args, reply = conn.recv()
        except EOFError:
            return
        ok, value = False, setup_error
        if setup_error is None:
            try:
                ok, value = True, fn(*args)
            except BaseException as err:
                value = _one_line(err)
        if not reply:
            posted_error = posted_error or (None if ok else value)
            continue
        conn.send((ok, value, posted_error))
        posted_error = None


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if isinstance(err, AnnlabError) else f"MLflow: {type(err).__name__}: {text}"
