"""Faults: interrupting training (a real signal to a real process) ends the run KILLED and a
rerun resumes; a NaN loss fails the run with the reason; concurrent jobs lose no run; the same
seed gives the same metrics; unsafe model files are refused."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from annlab.config.params import write_params
from conftest import ROOT, run, tool_env
from test_bad_input import assert_one_line_failure, make_project, stage_env, tree_digest


def _client(project: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")


def _all_runs(project: Path) -> list:
    client = _client(project)
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids)


def _epochs_done(project: Path) -> int:
    files = list((project / ".annlab" / "state").glob("*/epochs.csv"))
    if not files:
        return 0
    return max(len(path.read_text().strip().splitlines()) - 1 for path in files)


EPOCHS = 24
LONG_TRAINING = [f"training.epochs={EPOCHS}", "model.n_neurons=[64, 32]"]


@pytest.fixture
def prepared(tmp_path) -> Path:
    return make_project(tmp_path / "p", LONG_TRAINING, ["prepare", "split"])


@pytest.fixture(scope="module")
def straight_history(tmp_path_factory) -> pd.DataFrame:
    """The same training, never interrupted (what the resumed run is compared with)."""
    straight = make_project(tmp_path_factory.mktemp("straight"), LONG_TRAINING, ["prepare", "split", "train"])
    return pd.read_csv(straight / "models" / "history.csv")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_training_is_killed_and_resumes(prepared, signum, request):
    project = prepared
    before = tree_digest(project)
    proc = subprocess.Popen(
        [sys.executable, "-m", "annlab.stages.train"],
        cwd=project,
        env=stage_env(project),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while _epochs_done(project) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before it could be interrupted"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    done = _epochs_done(project)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "resume" in err
    assert tree_digest(project) == before, "an interrupted stage leaves no partial outputs"
    (killed,) = _all_runs(project)
    assert killed.info.status == "KILLED"
    assert 3 <= done < EPOCHS
    assert _epochs_done(project) == done, "the state of the finished epochs is kept"
    if signum == signal.SIGINT:
        return  # resuming does not depend on the signal: once, after SIGTERM

    resumed = run(["python", "-m", "annlab.stages.train"], project, stage_env(project))
    restored = int(re.search(r"resumed after epoch (\d+)", resumed.stdout).group(1))
    # the signal may land between an epoch's metrics and its backup: that epoch reruns
    assert restored in (done - 1, done)
    runs = {r.info.status: r for r in _all_runs(project)}
    assert set(runs) == {"KILLED", "FINISHED"}
    final = runs["FINISHED"]
    assert final.data.tags["annlab.resumed_from_epoch"] == str(restored)
    history = pd.read_csv(project / "models" / "history.csv")
    assert history["epoch"].tolist() == list(range(EPOCHS)), "the resumed run has every epoch"
    curve = _client(project).get_metric_history(final.info.run_id, "val_loss")
    assert sorted(m.step for m in curve) == list(range(EPOCHS))
    state = project / ".annlab" / "state"
    assert not [p for p in state.iterdir() if p.is_dir()], "state is cleared on success (locks stay)"

    # The same config trained without interruption ends at (nearly) the same place. Exact
    # equality is not expected: after a restore the data are shuffled from a fresh iterator.
    reference = request.getfixturevalue("straight_history")
    assert history["val_accuracy"].iloc[-1] == pytest.approx(reference["val_accuracy"].iloc[-1], abs=0.05)
    assert history["val_loss"].iloc[-1] == pytest.approx(reference["val_loss"].iloc[-1], rel=0.3)


@pytest.mark.slow
def test_nan_loss_fails_the_run_with_the_reason(prepared):
    project = prepared
    write_params(
        project / "params.yaml",
        ["training.epochs=5", "optimizer.learning_rate=1e12"],
        config_dir=project / "conf",
    )
    before = tree_digest(project)
    proc = run(["python", "-m", "annlab.stages.train"], project, stage_env(project), check=False)
    assert_one_line_failure(proc, "train", "loss became nan")
    assert "optimizer.learning_rate" in proc.stderr
    assert tree_digest(project) == before
    (failed,) = _all_runs(project)
    assert failed.info.status == "FAILED"
    assert "loss became nan" in failed.data.tags["annlab.failure_reason"]
    assert failed.data.metrics.get("epochs_run") is None


@pytest.mark.slow
def test_same_seed_same_metrics_other_seed_other_metrics(compose, workdir):
    from annlab.stages.prepare import prepare
    from annlab.stages.split import split
    from annlab.stages.train import train

    def history(seed: int) -> str:
        cfg = compose("dataset=iris", "training.epochs=5", "tracking.enabled=false", f"seed={seed}")
        prepare(cfg)
        split(cfg)
        train(cfg)
        return (workdir / "models" / "history.csv").read_text()

    first, again, other = history(7), history(7), history(8)
    assert first == again
    assert first != other


def _eight_jobs(project: Path, env: dict[str, str]) -> None:
    jobs = [
        subprocess.Popen(
            [
                "annlab-train",
                "dataset.limit=300",
                "training.epochs=2",
                "model.n_neurons=16",
                # eight processes on a few cores: one TensorFlow thread each, not a pool per core
                "training.intra_op_threads=1",
                "training.inter_op_threads=1",
                "tracking.log_model=false",  # runs, their metrics and artifacts are the subject
                # eight configurations of one data set: the first job prepares it, the others
                # wait for it and read it (only the learning rate differs)
                f"optimizer.learning_rate=0.0{i + 1}",
                f"tracking.run_name=job{i}",
                f"hydra.run.dir=outputs/job{i}",
            ],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    for job in jobs:
        _, err = job.communicate(timeout=600)
        assert job.returncode == 0, err[-3000:]


def _assert_eight_finished(uri: str) -> None:
    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("digits_mlp").experiment_id])
    assert len(runs) == 8
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert sorted(r.info.run_name for r in runs) == [f"job{i}" for i in range(8)]
    for r in runs:
        assert {"test_accuracy", "val_loss", "train_seconds"} <= set(r.data.metrics)
        assert len(client.get_metric_history(r.info.run_id, "val_loss")) == 2
        assert "history.csv" in {a.path for a in client.list_artifacts(r.info.run_id)}


@pytest.mark.slow
def test_eight_concurrent_jobs_on_one_sqlite_store(tmp_path):
    """(On a tracking server: tests/test_team_server.py, with its PostgreSQL store.)"""
    project = tmp_path / "p"
    (project).mkdir()
    import shutil

    shutil.copytree(ROOT / "conf", project / "conf")
    uri = f"sqlite:///{project / 'mlflow.db'}"  # a fresh store: the jobs race to create it
    _eight_jobs(project, tool_env({"MLFLOW_TRACKING_URI": uri}))
    _assert_eight_finished(uri)
    prepared = [p.name for p in (project / "data" / "cache").iterdir() if p.is_dir()]
    assert len(prepared) == 1, f"the eight jobs share one prepared data set: {prepared}"


@pytest.mark.slow
def test_a_concurrent_training_of_one_configuration_leaves_the_resume_state_alone(compose, workdir, capsys):
    """While one process trains a configuration (here: this test holds its lock), another
    training of it runs without resume state: it writes no epochs into the first one's folder
    and does not remove it when done."""
    from annlab.locks import file_lock
    from annlab.stages.prepare import prepare
    from annlab.stages.split import split
    from annlab.stages.train import train
    from annlab.training.outputs import STATE_ROOT, config_fingerprint

    cfg = compose("dataset=iris", "training.epochs=2", "tracking.enabled=false")
    prepare(cfg)
    split(cfg)
    state_dir = STATE_ROOT / config_fingerprint(cfg)
    state_dir.mkdir(parents=True)
    (state_dir / "epochs.csv").write_text("the first training's\n")
    with file_lock(state_dir.with_suffix(".lock")):
        train(cfg)
    assert "another process is training this configuration" in capsys.readouterr().out
    assert [p.name for p in state_dir.iterdir()] == ["epochs.csv"]
    assert (state_dir / "epochs.csv").read_text() == "the first training's\n"
    assert Path("models/model.keras").is_file()


def test_lambda_model_is_refused_in_safe_mode(tmp_path, monkeypatch):
    import keras

    from annlab.errors import AnnlabError
    from annlab.models.loading import load_keras_model

    model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda x: x * 2)])
    path = tmp_path / "model.keras"
    model.save(path)
    with pytest.raises(AnnlabError, match="Lambda layer") as err:
        load_keras_model(path)
    assert "ANNLAB_ALLOW_UNSAFE_MODELS=1" in str(err.value)
    monkeypatch.setenv("ANNLAB_ALLOW_UNSAFE_MODELS", "1")
    loaded = load_keras_model(path)
    np.testing.assert_allclose(loaded.predict(np.ones((1, 2)), verbose=0), [[2.0, 2.0]])


def test_metadata_and_scaler_are_json_never_pickles(compose, workdir):
    from annlab.stages.prepare import prepare
    from annlab.stages.split import split

    cfg = compose("dataset=iris")
    prepare(cfg)
    split(cfg)
    for path in workdir.rglob("*"):
        if path.is_file():
            assert path.suffix in (".npz", ".json"), path
            if path.suffix == ".json":
                json.loads(path.read_text())
            else:
                with np.load(path, allow_pickle=False) as data:
                    assert all(data[k].dtype != object for k in data.files)
