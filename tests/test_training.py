"""Optimizers, schedules and callbacks from config, the learning-rate finder, TensorBoard."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import mlflow
import pandas as pd
import pytest

from annlab.stages.prepare import prepare
from annlab.stages.split import split
from annlab.stages.train import train
from annlab.training.optimizers import build_optimizer
from datafiles import write_statlib


@pytest.mark.parametrize(
    ("overrides", "kind", "check"),
    [
        (
            ["optimizer=sgd", "optimizer.momentum=0.9", "optimizer.nesterov=true"],
            keras.optimizers.SGD,
            lambda o: o.momentum == 0.9 and o.nesterov,
        ),
        (
            ["optimizer=adam", "optimizer.learning_rate=0.003"],
            keras.optimizers.Adam,
            lambda o: abs(float(o.learning_rate) - 0.003) < 1e-9,
        ),
        (
            ["optimizer=rmsprop", "optimizer.learning_rate=0.002", "optimizer.momentum=0.5"],
            keras.optimizers.RMSprop,
            lambda o: o.momentum == 0.5 and abs(float(o.learning_rate) - 0.002) < 1e-9,
        ),
        (  # the rate decays by decay_rate every decay_steps steps
            ["optimizer.schedule=exponential", "optimizer.decay_steps=10", "optimizer.decay_rate=0.5"],
            keras.optimizers.SGD,
            lambda o: (
                abs(float(o.learning_rate) - 0.01) < 1e-9
                and o.iterations.assign(20) is not None
                and abs(float(o.learning_rate) - 0.0025) < 1e-9
            ),
        ),
    ],
)
def test_optimizers_from_config(compose, overrides, kind, check):
    optimizer = build_optimizer(compose(*overrides).optimizer)
    assert isinstance(optimizer, kind) and check(optimizer)


def _run_id() -> str:
    return json.loads(Path("models/run.json").read_text())["run_id"]


def test_each_training_gets_a_tensorboard_folder_of_its_own(compose):
    """Trainings of one experiment that start in the same second (a parallel sweep) log to
    two folders, which TensorBoard shows as two runs."""
    import re

    from annlab.training.callbacks import tensorboard_run_dir

    cfg = compose()
    first, second = (tensorboard_run_dir(cfg.training, "digits_mlp") for _ in range(2))
    assert first != second
    assert first.parent == second.parent == Path("tb_logs")
    assert re.fullmatch(r"digits_mlp-\d{8}-\d{6}-[0-9a-f]{6}", first.name), first.name


@pytest.mark.slow
def test_callbacks_lr_finder_and_tensorboard(compose, workdir):
    cfg = compose(
        "dataset=iris",
        "training.epochs=40",
        "optimizer.learning_rate=0.05",
        "training.early_stopping.enabled=true",
        "training.early_stopping.patience=2",
        "training.early_stopping.monitor=val_accuracy",
        "training.checkpoint.enabled=true",
        "training.tensorboard.enabled=true",
        "training.lr_finder.enabled=true",
        "training.lr_finder.apply=true",
    )
    prepare(cfg)
    split(cfg)
    train(cfg)
    run = mlflow.get_run(_run_id())
    # early stopping cut training short; checkpoint and finder figure exist
    assert run.data.metrics["epochs_run"] < 40
    assert Path("models/checkpoint.keras").is_file()
    assert Path("models/lr_finder.png").stat().st_size > 1000
    suggested = run.data.metrics["lr_finder_suggested_rate"]
    assert cfg.training.lr_finder.min_rate / 10 <= suggested <= cfg.training.lr_finder.max_rate
    figures = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "figures")}
    assert "figures/lr_finder.png" in figures
    # TensorBoard: a log folder per run, linked from the run
    logdir = Path(run.data.tags["annlab.tensorboard_logdir"])
    assert logdir.name.startswith("digits_mlp-") and any(logdir.rglob("events.out.tfevents.*"))


@pytest.mark.slow
def test_model_summary_and_weight_shapes_are_artifacts(compose, workdir):
    cfg = compose("training.epochs=1")
    prepare(cfg)
    split(cfg)
    train(cfg)
    run_id = _run_id()
    text = Path(
        mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model_summary.txt")
    ).read_text()
    assert "hidden_1 (Dense)" in text and "(None, 300)" in text
    assert "hidden_2/kernel: (300, 100)" in text and "output/bias: (10,)" in text


@pytest.mark.slow
def test_fit_trains_what_plain_keras_fit_on_the_arrays_trains(compose, workdir):
    """annlab's fit (128 batches per call, the validation split as a tf.data pipeline,
    `steps_per_epoch` given) is a speed-up only: the same per-epoch scores and the same
    weights as the book's `model.fit(X, y, validation_data=(X_valid, y_valid))` with one batch
    per call. (Pins the Keras behaviour training/fit.py relies on.)"""
    import numpy as np

    from annlab.data.split import load_splits
    from annlab.models.build import build_model
    from annlab.training.fit import compile_model, fit
    from annlab.training.setup import configure_tensorflow

    cfg = compose("training.epochs=3", "model.n_neurons=[32]", "model.n_hidden=1", "tracking.enabled=false")
    configure_tensorflow(cfg.training, cfg.seed)
    prepare(cfg)
    split(cfg)
    splits = load_splits(cfg.paths.processed)
    ours = fit(cfg, splits, Path("models"))

    keras.utils.set_random_seed(cfg.seed)
    model, head = build_model(cfg, splits.meta, splits.scaler)
    compile_model(cfg, model, head.loss, head.metrics, steps_per_execution=1)
    (X_train, y_train), valid = splits.train, splits.valid
    plain = model.fit(X_train, y_train, validation_data=valid, epochs=3, batch_size=32, verbose=0)

    assert cfg.training.steps_per_execution == 128 and cfg.training.batch_size == 32
    assert {key: ours.history[key] for key in plain.history} == plain.history
    assert set(plain.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    for theirs, mine in zip(model.get_weights(), ours.model.get_weights(), strict=True):
        np.testing.assert_array_equal(theirs, mine)


@pytest.mark.slow
def test_the_fashion_replicas_one_thread_per_op_trains_what_a_thread_pool_trains(compose, tmp_path):
    """conf/experiment/fashion_mnist_mlp.yaml runs TensorFlow ops on one thread, a speed-up
    only: the book's layers at batch 32 get the same history and weights as with a pool of two
    threads (TensorFlow's own choice on 2 cores; larger pools are not checked here). Two fresh
    `annlab-train` processes (threads are fixed when TensorFlow starts), on small IDX files
    with the real images' shape."""
    import shutil
    import subprocess

    import numpy as np

    from annlab.models.loading import load_keras_model
    from conftest import ROOT, tool_env
    from datafiles import write_idx_set

    assert compose("experiment=fashion_mnist_mlp").training.intra_op_threads == 1
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    idx = write_idx_set(tmp_path / "idx", n_train=640, n_test=40)
    common = [
        "annlab-train",
        "experiment=fashion_mnist_mlp",
        f"dataset.path={idx}",
        "split.valid_size=64",
        "training.epochs=2",
        "tracking.enabled=false",
    ]
    # side by side: the thread settings, not the load on the machine, decide the math
    procs = [
        subprocess.Popen(
            [*common, *threads, f"hydra.run.dir={name}"],
            cwd=tmp_path,
            env=tool_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, threads in (("one", []), ("pool", ["training.intra_op_threads=2"]))
    ]
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]  # both end before any assert
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, output[-3000:]
    one, pool = (tmp_path / name / "models" for name in ("one", "pool"))
    assert (one / "history.csv").read_text() == (pool / "history.csv").read_text()
    mine, theirs = (load_keras_model(folder / "model.keras") for folder in (one, pool))
    for a, b in zip(mine.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    """Data-parallel training (tf.distribute.MirroredStrategy) on the CPU split in two; the
    logical devices must exist before TensorFlow starts, hence a fresh process: the Hydra app
    `annlab-train` with command-line overrides, recorded on the run, and its outputs in
    `hydra.run.dir`."""
    import shutil

    from conftest import ROOT, run, tool_env

    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = run(
        [
            "annlab-train",
            "dataset=iris",
            "training.epochs=3",
            "training.strategy=mirrored",
            "training.logical_cpu_devices=2",
            "hydra.run.dir=out",
        ],
        tmp_path,
        tool_env({"MLFLOW_TRACKING_URI": store}),
    )
    assert "train: mlp on iris" in out.stdout
    client = mlflow.MlflowClient(tracking_uri=store)
    (found,) = client.search_runs([client.get_experiment_by_name("digits_mlp").experiment_id])
    assert found.info.status == "FINISHED"
    assert found.data.params["training.strategy"] == "mirrored"
    assert "training.strategy=mirrored" in found.data.tags["annlab.hydra.overrides"]
    assert found.data.metrics["replicas_in_sync"] == 2
    assert "test_accuracy" in found.data.metrics
    assert (tmp_path / "out" / "models" / "model.keras").is_file()


@pytest.mark.slow
def test_objective_is_the_kept_models_value_not_the_best_seen(compose, workdir):
    """Early stopping restores val_loss's best epoch; val_accuracy peaks later. The objective
    (run.json, MLflow) is val_accuracy of the epoch whose weights were saved, and the saved
    model scores exactly that on the validation split (this also pins Keras' EarlyStopping)."""
    import numpy as np

    from annlab.data.split import load_splits
    from annlab.models.loading import load_keras_model

    cfg = compose(
        "training.epochs=8",
        "optimizer.learning_rate=0.5",
        "model.n_hidden=1",
        "model.n_neurons=[64]",
        "training.early_stopping.enabled=true",
        "training.early_stopping.patience=20",  # never stops: restores at the end
    )
    prepare(cfg)
    split(cfg)
    train(cfg)
    history = pd.read_csv("models/history.csv")
    kept = int(history["val_loss"].idxmin())
    assert history["val_accuracy"].max() > history["val_accuracy"][kept]  # the case differs
    objective = json.loads(Path("models/run.json").read_text())["objective"]
    assert objective["epoch"] == kept
    assert objective["value"] == pytest.approx(history["val_accuracy"][kept], abs=1e-9)
    metrics = mlflow.get_run(_run_id()).data.metrics
    assert metrics["kept_epoch"] == kept
    assert metrics["objective_val_accuracy"] == pytest.approx(objective["value"], abs=1e-9)
    X, y = load_splits("data/processed").valid
    predicted = load_keras_model("models/model.keras").predict(X, verbose=0).argmax(axis=1)
    assert float(np.mean(predicted == y)) == pytest.approx(objective["value"], abs=1e-6)


@pytest.mark.slow
def test_auxiliary_output_loss_weights_are_applied(compose, workdir, tmp_path):
    """The loss the model reports is 0.9 x main + 0.1 x auxiliary: evaluated on the validation
    split in one batch (per-batch averaging aside), with the saved model's compiled loss."""
    from annlab.data.split import load_splits
    from annlab.models.build import model_inputs, model_targets
    from annlab.models.loading import load_keras_model

    cfg = compose(
        "experiment=california_wide_deep_aux",
        f"dataset.path={write_statlib(tmp_path / 'cal_housing.data', 300)}",
        "training.epochs=2",
        "tracking.enabled=false",
    )
    prepare(cfg)
    split(cfg)
    train(cfg)
    X, y = load_splits("data/processed").valid
    scores = load_keras_model("models/model.keras").evaluate(
        model_inputs(cfg, X), model_targets(cfg, y), batch_size=len(y), verbose=0, return_dict=True
    )
    main, aux = scores["output_loss"], scores["aux_output_loss"]
    assert abs(main - aux) > 1e-2  # the two losses differ, so the weights matter
    assert scores["loss"] == pytest.approx(0.9 * main + 0.1 * aux, rel=1e-5)
