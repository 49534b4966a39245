"""The `mlflow server` process of `annlab server`: started in a process group of its own,
watched until it answers, stopped as a whole (MLflow runs uvicorn, which runs the workers)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from annlab.errors import AnnlabError


def server_env(database_url: str) -> dict[str, str]:
    """The database URL travels in MLflow's own variable, so the password is not in `ps`."""
    env = dict(os.environ)
    env["MLFLOW_BACKEND_STORE_URI"] = database_url
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # a team's server talks to its team only
    without_job_runner(env)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(name, None)  # the server's store is the URL above, not a client setting
    return env


def without_job_runner(env: dict[str, str]) -> dict[str, str]:
    """MLflow 3 otherwise starts a job runner and 7 huey consumers (~1.5 GB, seconds of CPU
    each) for GenAI jobs (scorers, trace roll-ups) that training runs never submit. Setting
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true in the environment turns them back on."""
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return env


def server_command(host: str, port: int, artifacts: str, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        *("--host", host, "--port", str(port), "--workers", str(workers)),
        *("--serve-artifacts", "--artifacts-destination", artifacts),
    ]


def start(database_url: str, host: str, port: int, artifacts: str, workers: int, log: Path):
    """`mlflow server` on the database, its output in `log` (not the terminal: access logs)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            server_command(host, port, artifacts, workers),
            env=server_env(database_url),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a group to stop as one; Ctrl-C reaches annlab server only
        )


def wait_until_serving(
    uri: str, process: subprocess.Popen, log: Path, give_up: Callable[[], bool], seconds: float = 180
) -> bool:
    """True once the REST API answers from the database; False if `give_up()` (a signal)."""
    import requests

    deadline = time.monotonic() + seconds
    while not give_up():
        if process.poll() is not None:
            raise AnnlabError(
                f"The MLflow server exited with code {process.returncode} before it answered "
                f"({last_line(log)}): see {log}."
            )
        try:
            answer = requests.get(f"{uri}/api/2.0/mlflow/experiments/search?max_results=1", timeout=5)
            if answer.ok:
                return True
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise AnnlabError(f"The MLflow server did not answer on {uri} in {seconds:.0f} s: see {log}.")
        time.sleep(0.3)
    return False


def last_line(log: Path) -> str:
    """The log's last line that says something (MLflow ends a failure with its reason)."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1][:300] if lines else "no output"


def stop(process: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM to the whole group, SIGKILL to what is left after `grace` seconds."""
    group = process.pid  # start_new_session: the group id is the leader's pid
    _signal_group(group, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _group_alive(group) and time.monotonic() < deadline:
        process.poll()  # reap the leader, or it stays a zombie member of the group
        time.sleep(0.1)
    if _group_alive(group):
        _signal_group(group, signal.SIGKILL)
    process.wait()


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signum)


def _group_alive(group: int) -> bool:
    """Whether a process of the group still runs (zombies, which an init that does not reap
    leaves behind, do not count)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        if fields[0] != "Z" and int(fields[2]) == group:  # state, ppid, pgrp
            return True
    return False
