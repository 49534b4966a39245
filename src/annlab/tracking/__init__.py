"""Everything MLflow: store, runs and their status, lineage tags, metrics, models.

The rest of annlab never calls `mlflow.set_*` or `mlflow.start_run` itself.
"""

import os

# MLflow 3 sends usage telemetry from every process that imports it (a config fetch and event
# posts to MLflow's servers, in background threads) unless told not to; annlab's jobs use no
# network at run time. Every annlab import of MLflow comes after this package's; setting
# MLFLOW_DISABLE_TELEMETRY=false yourself turns MLflow's telemetry back on.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
