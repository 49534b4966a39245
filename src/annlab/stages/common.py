"""What every entry point shares: one error line, a non-zero exit, a one-line summary."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from annlab.errors import EXIT_USER_ERROR, AnnlabError, debug_requested

EXIT_INTERRUPTED = 130


def run_entry(name: str, action: Callable[[], str], hint: Callable[[], str] = lambda: "") -> None:
    """Run `action`; print its summary line, or one error line (ending with `hint()`) and exit
    non-zero."""
    try:
        summary = action()
    except AnnlabError as err:
        if debug_requested():
            raise
        print(f"annlab {name}: error: {err}{hint()}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        if debug_requested():
            raise
        print(
            f"annlab {name}: interrupted; the MLflow run is marked KILLED. Rerun the same "
            "command to resume from the last completed epoch.",
            file=sys.stderr,
        )
        sys.exit(EXIT_INTERRUPTED)
    print(summary, flush=True)


def stage_main(name: str, stage: Callable[..., str], flush: Callable[[], None] | None = None) -> None:
    """A DVC stage: read the committed params.yaml (as DVC tracked it) and run. `flush`: what a
    stage that may log to MLflow from its own process sends before it exits at once."""
    from annlab.config.loading import PARAMS_FILE, load_params

    run_entry(name, lambda: stage(load_params()), lambda: recovery_hint(PARAMS_FILE))
    exit_without_teardown(after_tensorflow_only=False, flush=flush)


def recovery_hint(params_file: str) -> str:
    """The way back when a stage fails under DVC in the workspace with settings that differ
    from the last commit (typically `dvc exp run -S ...`, which rewrote params.yaml).

    DVC removed this stage's outputs before running it, and params.yaml keeps the failing
    settings, so a plain `dvc repro` would fail the same way; with the committed params.yaml
    back, `dvc repro` restores the outputs from DVC's run cache (or reruns what it must).
    """
    root = os.environ.get("DVC_ROOT")
    if not root or Path(root).resolve() != Path.cwd().resolve():
        return ""  # not DVC, or a queued experiment in a temp copy: the workspace is untouched
    try:
        diff = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", params_file], timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    if diff.returncode != 1:
        return ""
    return (
        f" ({params_file} differs from the last commit and DVC removed this stage's outputs: "
        f"`git checkout {params_file} && dvc repro` brings the committed pipeline back.)"
    )


def exit_without_teardown(
    after_tensorflow_only: bool = True, flush: Callable[[], None] | None = None
) -> None:
    """Exit 0 at once after a finished stage (`after_tensorflow_only`: only if it loaded
    TensorFlow; `annlab-train` keeps a normal exit otherwise, for its launchers' clean-up).

    The interpreter's teardown takes 1.5-2 s with TensorFlow loaded (thread pools, thousands of
    modules) and 0.25 s with the report's matplotlib and pandas, and holds up `dvc repro`. By
    now every output is written and closed, the MLflow run has ended and the MLflow helper has
    exited; what atexit would still flush is flushed first: `flush` (the caller's MLflow queue,
    `annlab.tracking.runs.flush_logging`), logging's handlers, stdout and stderr. A process that
    started cross-validation's fold workers exits normally instead (their clean-up runs at exit).
    """
    if after_tensorflow_only and "tensorflow" not in sys.modules:
        return
    cv = sys.modules.get("annlab.training.cv")  # loaded only when folds were fitted
    if cv is not None and cv.workers_started():
        return  # a normal exit: loky's finalizers release what its resource tracker watches
    import logging

    if flush is not None:
        flush()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
