"""Everything MLflow: store, runs and their status, lineage tags, metrics, models.

The rest of annlab never calls `mlflow.set_*` or `mlflow.start_run` itself.
"""
