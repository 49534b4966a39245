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
