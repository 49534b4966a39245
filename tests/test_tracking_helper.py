"""The forked MLflow helper: work runs in the helper against the real store, errors come back
as one line, and the stage process itself never imports MLflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, sys
    from annlab.config.schema import TrackingConfig
    from annlab.errors import AnnlabError
    from annlab.tracking.helper import MlflowHelper

    def create(name):
        import mlflow
        return mlflow.create_experiment(name)

    def fail():
        raise ValueError("a multi-line\\nfailure")

    with MlflowHelper(TrackingConfig()) as helper:
        forked = helper._process is not None
        experiment_id = helper.call(create, "made-by-the-helper")
        try:
            helper.call(fail)
            error = None
        except AnnlabError as err:
            error = str(err)
    print(json.dumps({"forked": forked, "experiment_id": experiment_id, "error": error,
                      "mlflow_imported_here": "mlflow" in sys.modules}))
""")


def test_helper_runs_mlflow_work_in_a_forked_process(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, cwd=tmp_path, timeout=300
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["forked"] is (sys.platform.startswith("linux"))
    assert result["error"] == "MLflow: ValueError: a multi-line failure"
    assert result["mlflow_imported_here"] is not result["forked"]
    import mlflow

    store = mlflow.MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])  # the helper's
    experiment = store.get_experiment_by_name("made-by-the-helper")
    assert experiment is not None and experiment.experiment_id == result["experiment_id"]


# Where MLflow finds one of these, it turns its telemetry off by itself (pytest sets the first).
CI_MARKERS = (
    "PYTEST_CURRENT_TEST",
    "CI",
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "DO_NOT_TRACK",
    "MLFLOW_DISABLE_TELEMETRY",
)


def test_mlflow_sends_no_telemetry_from_annlab_processes(tmp_path):
    """MLflow 3 starts a telemetry client (a config fetch and event posts to its servers) in any
    process that imports it outside CI; annlab's processes use no network, so importing
    annlab.tracking, which every annlab import of MLflow follows, turns it off, and a user's
    own MLFLOW_DISABLE_TELEMETRY=false is left alone."""
    env = {k: v for k, v in os.environ.items() if k not in CI_MARKERS}
    code = (
        "import os, annlab.tracking, mlflow\n"
        "from mlflow.telemetry import get_telemetry_client\n"
        "print(get_telemetry_client() is None, os.environ['MLFLOW_DISABLE_TELEMETRY'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert out.stdout.split() == ["True", "true"], out.stderr[-2000:]
    opted_in = {**env, "MLFLOW_DISABLE_TELEMETRY": "false"}
    code = "import os, annlab.tracking\nprint(os.environ['MLFLOW_DISABLE_TELEMETRY'])\n"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=opted_in, check=True
    )
    assert out.stdout.strip() == "false"
