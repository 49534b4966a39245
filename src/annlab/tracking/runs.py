"""MLflow runs that always end: FINISHED, FAILED with the reason, or KILLED on a signal.

`with mlflow.start_run()` alone marks Ctrl-C as FAILED and a SIGTERM (the default action)
kills the process with the run left RUNNING. `run_context` turns both signals into
`KeyboardInterrupt` (annlab.signals), ends the run KILLED, and restores the previous handlers.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from annlab.errors import AnnlabError
from annlab.signals import interrupts_as_exceptions
from annlab.tracking import tags


@contextlib.contextmanager
def run_context(run_id: str) -> Iterator[Any]:
    """Resume run `run_id` in this thread and end it with the right status: FINISHED, FAILED
    with the reason, or KILLED on a signal."""
    import mlflow

    from annlab.tracking.store import retry_locked

    with interrupts_as_exceptions():
        run = retry_locked(lambda: mlflow.start_run(run_id=run_id))
        try:
            yield run
        except KeyboardInterrupt:
            _end(run, "KILLED", "interrupted by a signal")
            raise
        except AnnlabError as err:
            _end(run, "FAILED", str(err))
            raise
        except BaseException as err:
            _end(run, "FAILED", f"{type(err).__name__}: {err}")
            raise
        else:
            _end(run, "FINISHED", None)


def _end(run, status: str, reason: str | None) -> None:
    import mlflow

    from annlab.tracking.store import retry_locked

    with contextlib.suppress(Exception):
        mlflow.flush_async_logging()
    if reason:
        with contextlib.suppress(Exception):
            mlflow.set_tag(tags.FAILURE_REASON, reason[:5000])
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run.info.run_id:
        retry_locked(lambda: mlflow.end_run(status=status))
    else:
        retry_locked(lambda: mlflow.MlflowClient().set_terminated(run.info.run_id, status))


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    import mlflow

    from annlab.tracking.store import retry_locked

    clean = {k: float(v) for k, v in metrics.items() if v is not None}
    retry_locked(lambda: mlflow.log_metrics(clean, step=step))


def log_evaluation(run_id: str, reports_dir) -> None:
    """What the evaluate stage wrote (its test metrics and details), on the training run."""
    with run_context(run_id=run_id):
        log_evaluation_here(reports_dir)


def log_evaluation_here(reports_dir) -> None:
    """The same on the active run (annlab-train: in its MLflow helper, before the run ends)."""
    from pathlib import Path

    import mlflow

    from annlab.io import read_json

    reports = Path(reports_dir)
    log_metrics(read_json(reports / "metrics.json"))
    mlflow.log_dict(read_json(reports / "evaluation" / "details.json"), "evaluation/details.json")


def log_figures(run_id: str, pngs: list) -> None:
    """The report's figures, on the training run (under `figures/`)."""
    import mlflow

    with run_context(run_id=run_id):
        for png in pngs:
            mlflow.log_artifact(str(png), artifact_path="figures")


def flush_logging() -> None:
    """Send what MLflow still queues (asynchronous logging) before a process exits at once;
    nothing to do (and no MLflow import) in a process that never imported MLflow."""
    if "mlflow" not in sys.modules:
        return
    import mlflow

    with contextlib.suppress(Exception):
        mlflow.flush_async_logging()
