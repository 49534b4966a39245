"""How each job of a sweep ended, so that a sweep with failed jobs fails, whatever the sweeper
(Hydra's basic one, annlab's Optuna one) and launcher (basic, joblib, Ray).

In a sweep a job never raises out of the task function: the other jobs must still run, and
Hydra's basic sweeper would stop at the first exception. It returns a `JobResult` instead: the
number sweepers expect (the objective, NaN unless the job finished) that also says how the job
ended and why. Each job also records itself in the sweep folder,
`<sweep dir>/.annlab/outcomes/<sweep id>/<job>.json`: "running" when it starts, its outcome
when it ends. At the end `SweepOutcomeCallback` reads them, prints how many jobs finished,
failed (each with its one-line reason) and were pruned, and exits non-zero when one failed; a
job still "running" then had its process killed. The MLflow parent run records the same tally
(annlab.tracking.sweeps).
"""

from __future__ import annotations

import json
import math
import os
import sys
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from annlab.io import write_json

FINISHED, FAILED, PRUNED, RUNNING = "finished", "failed", "pruned", "running"
SWEEP_ID_ENV = "ANNLAB_SWEEP_ID"
OUTCOMES_DIR = Path(".annlab") / "outcomes"
EXIT_JOBS_FAILED = 1


class JobResult(float):
    """A job's objective (NaN unless it finished) with how the job ended: `status`, `reason`
    (why it failed or was pruned) and its MLflow `run_id`."""

    status: str
    reason: str | None
    run_id: str | None

    def __new__(
        cls, value: float | None, status: str, reason: str | None = None, run_id: str | None = None
    ) -> JobResult:
        result = super().__new__(cls, math.nan if value is None else value)
        result.status, result.reason, result.run_id = status, reason, run_id
        return result

    def __reduce__(self):  # pickled by joblib and Ray on the way back from their workers
        return (JobResult, (float(self), self.status, self.reason, self.run_id))


@dataclass
class JobOutcome:
    number: int
    overrides: list[str]
    status: str
    value: float | None = None
    reason: str | None = None
    run_id: str | None = None

    def label(self) -> str:
        return f"job {self.number} ({' '.join(self.overrides) or 'no overrides'})"


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def outcome_of(result: JobReturn, number: int) -> JobOutcome:
    """A launcher's `JobReturn` as an outcome, for sweepers that act on each job (Optuna):
    annlab's jobs return a `JobResult`; any other finite number is a finished job; a job that
    raised failed with its exception."""
    overrides = list(result.overrides or [])
    if result.status != JobStatus.COMPLETED:
        try:  # Hydra's public API: reading return_value re-raises the job's exception
            _ = result.return_value
            reason = "the job did not complete"
        except Exception as err:
            reason = one_line(err)
        return JobOutcome(number, overrides, FAILED, reason=reason)
    value = result.return_value
    if isinstance(value, JobResult):
        finite = float(value) if math.isfinite(value) else None
        return JobOutcome(number, overrides, value.status, finite, value.reason, value.run_id)
    if isinstance(value, int | float) and math.isfinite(value):
        return JobOutcome(number, overrides, FINISHED, float(value))
    return JobOutcome(number, overrides, FAILED, reason=f"returned {value!r}, not a number")


@dataclass
class SweepOutcomes:
    jobs: list[JobOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for job in self.jobs if job.status == status)

    @property
    def failed(self) -> list[JobOutcome]:
        return [job for job in self.jobs if job.status == FAILED]

    def tally(self) -> str:
        return (
            f"{len(self.jobs)} jobs: {self.count(FINISHED)} finished, {self.count(FAILED)} failed, "
            f"{self.count(PRUNED)} pruned"
        )


def outcomes_dir(sweep_dir: str | Path, sweep_id: str) -> Path:
    return Path(sweep_dir) / OUTCOMES_DIR / sweep_id


def record(sweep_dir: str | Path, outcome: JobOutcome) -> None:
    """Write one job's record (this sweep's id comes from the environment Hydra gave the job)."""
    sweep_id = os.environ.get(SWEEP_ID_ENV)
    if sweep_id:
        write_json(outcomes_dir(sweep_dir, sweep_id) / f"{outcome.number}.json", asdict(outcome))


def record_this_job(result: JobResult | None) -> None:
    """Record the running Hydra job: "running" (`result` None), then how it ended."""
    from hydra.core.hydra_config import HydraConfig

    hydra = HydraConfig.get()
    outcome = JobOutcome(int(hydra.job.num), list(hydra.overrides.task), RUNNING)
    if result is not None:
        outcome.status, outcome.reason, outcome.run_id = result.status, result.reason, result.run_id
        outcome.value = float(result) if math.isfinite(result) else None
    record(hydra.sweep.dir, outcome)


def read_outcomes(sweep_dir: str | Path, sweep_id: str) -> SweepOutcomes:
    """Every job's last record, in job order; a job still "running" lost its process."""
    jobs = []
    for path in outcomes_dir(sweep_dir, sweep_id).glob("*.json"):
        job = JobOutcome(**json.loads(path.read_text()))
        if job.status == RUNNING:
            job.status, job.reason = FAILED, "the job's process ended before the job did (killed?)"
        jobs.append(job)
    return SweepOutcomes(sorted(jobs, key=lambda job: job.number))


def summary_lines(outcomes: SweepOutcomes, metric: str, direction: str) -> list[str]:
    from annlab.objective import best

    lines = [f"annlab sweep: {outcomes.tally()}"]
    top = best([j for j in outcomes.jobs if j.status == FINISHED], lambda j: j.value, direction)
    if top is not None:
        run = f", MLflow run {top.run_id}" if top.run_id else ""
        lines.append(f"annlab sweep: best {top.label()}: {metric}={top.value:.4f}{run}")
    lines += [f"annlab sweep: {job.label()} failed: {job.reason}" for job in outcomes.failed]
    return lines


class SweepOutcomeCallback(Callback):
    """Hydra callback: gives the sweep an id its jobs record under; at the end prints the tally
    and exits non-zero when a job failed. Listed first in conf/config.yaml: it starts first
    (the id is known to the parent-run callback) and ends last (after the parent is ended)."""

    def __init__(self) -> None:
        self.sweep_id: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from annlab.sweeps.job_env import set_job_env

        self.sweep_id = uuid.uuid4().hex[:12]
        os.environ[SWEEP_ID_ENV] = self.sweep_id
        set_job_env(config, {SWEEP_ID_ENV: self.sweep_id})

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.sweep_id is None:
            return
        outcomes = read_outcomes(config.hydra.sweep.dir, self.sweep_id)
        objective = config.get("objective") or {}
        metric = str(objective.get("metric", "objective"))
        for line in summary_lines(outcomes, metric, str(objective.get("direction", "maximize"))):
            print(line, flush=True)
        os.environ.pop(SWEEP_ID_ENV, None)
        if outcomes.failed:
            where = outcomes_dir(config.hydra.sweep.dir, self.sweep_id)
            print(
                f"annlab-train: error: {len(outcomes.failed)} of {len(outcomes.jobs)} jobs of the sweep "
                f"failed (reasons above; each job's record in {where}).",
                file=sys.stderr,
                flush=True,
            )
            sys.exit(EXIT_JOBS_FAILED)
