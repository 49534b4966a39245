"""Every chapter-10 experiment runs through the real pipeline code on small data, and its MLflow
run holds what the conventions say."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest

from annlab.models.loading import load_keras_model
from annlab.stages.evaluate import evaluate_stage
from annlab.stages.prepare import prepare
from annlab.stages.split import split
from annlab.stages.train import train
from annlab.tracking.runs import log_evaluation
from conftest import ROOT
from datafiles import write_idx_set, write_statlib

EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
REGRESSION = {name for name in EXPERIMENTS if name.startswith("california")}
AUX = {"california_wide_deep_aux", "california_subclassed"}


def small_data_overrides(name: str, data: Path) -> list[str]:
    if name.startswith(("fashion_mnist", "mnist")):
        return [f"dataset.path={data / 'idx'}", "split.valid_size=20"]
    if name.startswith("california"):
        return [f"dataset.path={data / 'cal_housing.data'}"]
    return []


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    write_idx_set(folder / "idx")
    write_statlib(folder / "cal_housing.data")
    return folder


def test_every_example_of_the_chapter_is_an_experiment():
    assert set(EXPERIMENTS) == {
        "fashion_mnist_mlp",
        "california_mlp",
        "california_wide_deep",
        "california_wide_deep_two_inputs",
        "california_wide_deep_aux",
        "california_subclassed",
        "iris_perceptron",
        "iris_mlp",
        "mnist_mlp",
        "california_dropout",
        "digits_mlp",
        *[e for e in EXPERIMENTS if e.endswith("_tuned")],
    }


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_builds_its_model_on_its_data(name, compose, workdir, data):
    """Quick: each experiment composes, validates, prepares its (small) data and builds."""
    from annlab.data.split import load_splits
    from annlab.models.build import build_model

    cfg = compose(f"experiment={name}", *small_data_overrides(name, data))
    prepare(cfg)
    split(cfg)
    splits = load_splits("data/processed")
    if cfg.model.name == "perceptron":
        assert splits.meta.task == "binary"
        return
    model, head = build_model(cfg, splits.meta, splits.scaler)
    assert model.count_params() > 0 and head.units == splits.meta.n_outputs


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_runs_and_is_tracked(name, compose, workdir, data):
    cfg = compose(f"experiment={name}", "training.epochs=2", *small_data_overrides(name, data))
    assert cfg.experiment_name == name
    prepare(cfg)
    split(cfg)
    train(cfg)
    evaluate_stage(cfg)
    run_id = json.loads(Path("models/run.json").read_text())["run_id"]
    log_evaluation(run_id, Path("reports"))  # as the report stage or annlab-train does

    run = mlflow.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert mlflow.get_experiment(run.info.experiment_id).name == name
    assert run.data.params["model.name"] == cfg.model.name
    assert run.data.params["dataset.name"] == cfg.dataset.name
    metrics = run.data.metrics
    if name in REGRESSION:
        assert {"test_mse", "test_rmse", "test_mae", "test_r2"} <= set(metrics)
    else:
        assert {"test_accuracy", "test_macro_f1"} <= set(metrics)
    if name in AUX:
        assert "test_aux_mse" in metrics and "val_aux_output_loss" in metrics
    if cfg.model.name != "perceptron":
        assert len(mlflow.MlflowClient().get_metric_history(run_id, "val_loss")) == 2

    # The saved model and the logged MLflow model predict the same on raw test rows.
    from annlab.data.split import load_splits
    from annlab.models.build import model_inputs

    X = load_splits("data/processed").test[0][:5]
    model = load_keras_model("models/model.keras")
    expected = model.predict(model_inputs(cfg, X), verbose=0)
    logged = mlflow.keras.load_model(run.data.tags["annlab.model_uri"])
    got = logged.predict(model_inputs(cfg, X), verbose=0)
    if isinstance(expected, dict):
        for key in expected:
            np.testing.assert_allclose(got[key], expected[key], rtol=1e-5)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-5)
    details = json.loads(Path("reports/evaluation/details.json").read_text())
    assert len(details["first_predictions"]) == 3


def test_fashion_replica_has_the_books_parameter_count_and_classes(compose, workdir, data):
    cfg = compose(
        "experiment=fashion_mnist_mlp",
        "training.epochs=1",
        "tracking.enabled=false",
        *small_data_overrides("fashion_mnist_mlp", data),
    )
    prepare(cfg)
    split(cfg)
    train(cfg)
    summary = Path("models/summary.txt").read_text()
    assert "Trainable params: 266,610" in summary
    assert "hidden_1/kernel: (784, 300)" in summary
    meta = json.loads(Path("models/meta.json").read_text())
    assert meta["class_names"][0] == "T-shirt/top" and meta["class_names"][9] == "Ankle boot"
    assert json.loads(Path("data/processed/scaler.json").read_text()) == {"kind": "rescale", "divisor": 255.0}


def test_perceptron_matches_scikit_learn(compose, workdir):
    """The Keras twin of the Perceptron decides exactly as scikit-learn does (book: setosa)."""
    from sklearn.linear_model import Perceptron

    from annlab.data.split import load_splits

    cfg = compose("experiment=iris_perceptron", "tracking.enabled=false")
    prepare(cfg)
    split(cfg)
    train(cfg)
    splits = load_splits("data/processed")
    clf = Perceptron(random_state=cfg.seed).fit(*splits.train)
    X = np.concatenate([splits.valid[0], splits.test[0]])
    keras_pred = load_keras_model("models/model.keras").predict(X, verbose=0)[:, 0] > 0.5
    np.testing.assert_array_equal(keras_pred.astype(int), clf.predict(X))
    assert splits.meta.class_names == ["not setosa", "setosa"]
