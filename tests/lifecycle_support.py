"""Train small real models for the lifecycle tests (predict, registry, serving, export).

Module-scoped fixtures call `train_small` once per model: it runs the real prepare / split /
train / evaluate stage functions into a folder of its own, logging to the MLflow store that
`MLFLOW_TRACKING_URI` names at that moment.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import free_port

ROOT = Path(__file__).resolve().parents[1]

IRIS = ("dataset=iris", "training.epochs=3", "optimizer=adam", "optimizer.learning_rate=0.01")
DIABETES = (
    "dataset=diabetes",
    "training.epochs=3",
    "optimizer=adam",
    "optimizer.learning_rate=0.01",
    "objective.metric=val_loss",
    "objective.direction=minimize",
)
WIDE_DEEP = (
    *DIABETES,
    "model.name=wide_deep",
    "++model.wide_features=[0,1,2,3,4]",
    "++model.deep_features=[2,3,4,5,6,7,8,9]",
    "++model.aux_output=true",
    "model.n_neurons=[30]",
    "model.n_hidden=2",
)
SUBCLASSED = (
    *DIABETES,
    "model.name=wide_deep_subclassed",
    "++model.wide_features=[0,1,2,3,4]",
    "++model.deep_features=[2,3,4,5,6,7]",
    "++model.aux_output=true",
    "model.n_neurons=[30]",
)
DIGITS = ("dataset=digits", "training.epochs=2", "model.n_neurons=[64,32]")


@dataclass
class Trained:
    root: Path
    cfg: object
    run_id: str | None

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def data(self) -> Path:
        return self.root / "data" / "processed"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def meta(self) -> dict:
        return json.loads((self.models / "meta.json").read_text())

    def test_split(self) -> tuple[np.ndarray, np.ndarray]:
        with np.load(self.data / "test.npz", allow_pickle=False) as arrays:
            return arrays["X"], arrays["y"]

    def evaluate_predictions(self) -> pd.DataFrame:
        return pd.read_csv(self.reports / "evaluation" / "predictions.csv")


def compose(*overrides: str):
    from annlab.config import compose_config

    return compose_config(list(overrides), config_dir=ROOT / "conf")


def train_small(
    root: Path, *overrides: str, parent_run_id: str | None = None, evaluate: bool = True
) -> Trained:
    """prepare -> split -> train -> evaluate into `root`, as `dvc repro` would."""
    from annlab.stages.evaluate import evaluate_stage
    from annlab.stages.prepare import prepare
    from annlab.stages.split import split
    from annlab.stages.train import train

    cfg = compose(*overrides)
    root.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # .annlab/backup and tb_logs are relative to the working folder
        prepare(cfg, root / "data" / "raw")
        split(cfg, root / "data" / "raw", root / "data" / "processed")
        kwargs = {"parent_run_id": parent_run_id} if parent_run_id else {}
        train(cfg, root / "data" / "processed", root / "models", **kwargs)
    run_id = json.loads((root / "models" / "run.json").read_text())["run_id"]
    if evaluate:
        from annlab.tracking.runs import log_evaluation

        evaluate_stage(cfg, root / "data" / "processed", root / "models", root / "reports")
        log_evaluation(run_id, root / "reports")  # as the report stage or annlab-train does
    return Trained(root, cfg, run_id)


@contextlib.contextmanager
def tracking_store(uri: str) -> Iterator[None]:
    """Point MLflow at `uri` for a module-scoped fixture (the autouse fixture is per test)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
        yield


def raw_table(trained: Trained, path: Path, extra: bool = True) -> Path:
    """The test split as a user's file: raw features by name, columns reversed, plus the
    target and an id column the model does not use."""
    X, y = trained.test_split()
    names = trained.meta["feature_names"]
    frame = pd.DataFrame(X.reshape(len(X), -1), columns=names)[names[::-1]]
    if extra:
        frame.insert(0, "id", np.arange(len(frame)))
        frame["target"] = y
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


@contextlib.contextmanager
def mlflow_server(model_uri: str, env: dict[str, str], log: Path, timeout: float = 180) -> Iterator[str]:
    """`mlflow models serve` on a free loopback port; yields its base URL once /ping answers,
    and stops its whole process group (uvicorn workers included) afterwards."""
    import requests

    port = free_port()
    cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(
                    f"mlflow models serve exited {proc.returncode}:\n{log.read_text()[-3000:]}"
                )
            try:
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"no /ping answer in {timeout}s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
