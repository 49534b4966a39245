"""`annlab ui` as a person uses it: a real MLflow server that annlab's experiments reach over
HTTP (marked as model training, like on sqlite), stopped by the terminal's Ctrl-C quietly,
with every server process gone and the port free."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest
import requests

from conftest import assert_stopped, free_port, stop_annlab_ui, tool_env, wait_until_healthy

pytestmark = pytest.mark.slow  # starts real servers


def experiment_kind(base: str, experiment_id: str) -> str | None:
    answer = requests.get(
        f"{base}/api/2.0/mlflow/experiments/get", params={"experiment_id": experiment_id}, timeout=10
    ).json()["experiment"]
    return {t["key"]: t["value"] for t in answer.get("tags", [])}.get("mlflow.experimentKind")


def test_server_experiments_are_marked_and_ctrl_c_stops_the_ui(tmp_path, monkeypatch):
    import mlflow

    from annlab.config.schema import TrackingConfig
    from annlab.tracking.store import configure, ensure_experiment

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    output = tmp_path / "ui.out"
    with open(output, "w") as out:
        ui = subprocess.Popen(
            [sys.executable, "-m", "annlab.cli", "ui", "--port", str(port)],
            cwd=tmp_path,
            env=tool_env({"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'server.db'}"}),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a shell's foreground job
        )
    previous_uri = mlflow.get_tracking_uri()
    try:
        wait_until_healthy(base, ui, "annlab ui")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", base)
        configure(TrackingConfig())
        created = ensure_experiment("made_by_annlab")
        elsewhere = mlflow.MlflowClient(base).create_experiment("made_elsewhere")
        assert experiment_kind(base, elsewhere) is None
        assert ensure_experiment("made_elsewhere") == elsewhere
        assert experiment_kind(base, created) == "custom_model_development"
        assert experiment_kind(base, elsewhere) == "custom_model_development"

        server = psutil.Process(ui.pid).children(recursive=True)
        assert len(server) >= 2, "mlflow server and its workers"
        commands = [" ".join(p.cmdline()) for p in server]
        assert not [c for c in commands if "huey" in c], commands  # no GenAI job runner
        assert sum("--multiprocessing-fork" in c for c in commands) <= 1, commands  # one worker
        os.killpg(ui.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the foreground group
        assert ui.wait(timeout=60) == 0
    finally:
        mlflow.set_tracking_uri(previous_uri)
        stop_annlab_ui(ui)
    assert_stopped(server, port)
    lines = output.read_text().splitlines()
    assert lines[0].startswith(f"MLflow UI: {base} ") and lines[-1] == f"ui: stopped; port {port} is free"
    assert len(lines) <= 3, lines  # the address, no experiment link yet (none existed), the stop line
