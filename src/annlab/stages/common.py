"""What every entry point shares: one error line, a non-zero exit, a one-line summary."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from annlab.errors import AnnlabError

EXIT_USER_ERROR = 1
EXIT_INTERRUPTED = 130


def debug_requested() -> bool:
    """Full tracebacks on request, with the variable Hydra users already know."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1" or os.environ.get("ANNLAB_DEBUG") == "1"


def run_entry(name: str, action: Callable[[], str]) -> None:
    """Run `action`; print its summary line, or one error line and exit non-zero."""
    try:
        summary = action()
    except AnnlabError as err:
        if debug_requested():
            raise
        print(f"annlab {name}: error: {err}", file=sys.stderr)
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


def stage_main(name: str, stage: Callable[..., str]) -> None:
    """A DVC stage: read the committed params.yaml (as DVC tracked it) and run."""
    from annlab.config.loading import load_params

    run_entry(name, lambda: stage(load_params()))
    exit_without_teardown()


def exit_without_teardown() -> None:
    """Exit 0 at once after a stage that loaded TensorFlow.

    The interpreter's teardown with TensorFlow loaded (thread pools, thousands of modules)
    takes 1.5-2 s and holds up `dvc repro`. By now every output is written and closed and the
    MLflow run has ended; stdio and logging are flushed first.
    """
    if "tensorflow" not in sys.modules:
        return
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
