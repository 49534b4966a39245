"""Cross-validation (`training.cv_folds`) and the book's randomized search
(`hparams_search=california_random_search`): K folds as MLflow child runs, the CV mean as the
objective, the seeded random sampler inside the book's ranges, and the refit of the best
configuration at the end of the sweep, which `annlab promote --parent-run` picks.

One real sweep (2 trials x 2 folds, 2 epochs, a 300-row StatLib file) is shared by the
end-to-end tests; the folds run in 2 parallel processes there, and the single-run test fits the
same configuration's folds one after another in this process: the scores must be the same."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml

from annlab.errors import AnnlabError
from conftest import ROOT, copy_project, project_env, run, tool_env
from datafiles import write_statlib

BOOK = {"model.n_hidden": (0, 3), "model.n_neurons": (1, 99), "optimizer.learning_rate": (3e-4, 3e-2)}
TINY = ["training.cv_folds=2", "training.epochs=2", "training.metrics=[mae]"]  # the book's: loss only


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    """`annlab-train -m hparams_search=california_random_search` on small data, once."""
    folder = tmp_path_factory.mktemp("cv_search")
    project = copy_project(folder / "project")
    data = write_statlib(folder / "cal_housing.data", 300)
    out = run(
        [
            "annlab-train",
            "-m",
            "hparams_search=california_random_search",
            f"dataset.path={data}",
            "hydra.sweeper.n_trials=2",
            "training.cv_jobs=2",  # the folds in 2 processes
            *TINY,
        ],
        project,
        project_env(project),
    )
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    exp = client.get_experiment_by_name("california_random_search")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    (parent,) = [r for r in runs if r.data.tags.get("annlab.sweep.role") == "parent"]
    best = yaml.safe_load(
        (project / "reports" / "hparams_search" / "california_random_search_best.yaml").read_text()
    )
    return {
        "project": project,
        "data": data,
        "out": out,
        "client": client,
        "runs": runs,
        "parent": parent,
        "best": best,
    }


def children_of(runs, run_id: str) -> list:
    return [r for r in runs if r.data.tags.get("mlflow.parentRunId") == run_id]


@pytest.mark.slow
def test_parent_trials_and_folds_nest_and_the_cv_mean_is_the_mean_of_the_folds(search):
    runs, parent = search["runs"], search["parent"]
    jobs = children_of(runs, parent.info.run_id)
    trials = [r for r in jobs if "annlab.optuna.trial" in r.data.tags]
    assert sorted(r.data.tags["annlab.optuna.trial"] for r in trials) == ["0", "1"]
    assert len(jobs) == 3  # 2 trials and the refit
    # the fold workers end cleanly: no resource-tracker warning after the sweep's last line
    assert "resource_tracker" not in search["out"].stderr, search["out"].stderr[-2000:]
    for trial in trials:
        folds = children_of(runs, trial.info.run_id)
        assert sorted(f.data.tags["annlab.cv.fold"] for f in folds) == ["0", "1"]
        assert {f.info.status for f in folds} == {"FINISHED"}
        losses = [
            f.data.metrics["fold_loss"] for f in sorted(folds, key=lambda f: f.data.tags["annlab.cv.fold"])
        ]
        metrics = trial.data.metrics
        assert metrics["cv_loss_mean"] == pytest.approx(np.mean(losses), rel=1e-12)
        assert metrics["cv_loss_std"] == pytest.approx(np.std(losses), rel=1e-9)
        assert metrics["objective_val_loss"] == metrics["cv_loss_mean"]  # the trial's score
        for name in ("mae",):  # every compiled metric, held out
            values = [f.data.metrics[f"fold_{name}"] for f in folds]
            assert metrics[f"cv_{name}_mean"] == pytest.approx(np.mean(values), rel=1e-12)
        assert metrics["cv_jobs"] == 2
        # a trial only cross-validates: no model of its own, nothing on the test split
        assert "annlab.model_uri" not in trial.data.tags
        assert not [k for k in metrics if k.startswith("test_")]
        rows = [(int(f.data.params["cv.train_rows"]), int(f.data.params["cv.held_out_rows"])) for f in folds]
        assert len({train + held for train, held in rows}) == 1  # the training split, each time
        assert sum(held for _, held in rows) == rows[0][0] + rows[0][1]  # each row held out once
        for fold in folds:  # each fold's fit: per-epoch metrics, the validation split monitored
            history = search["client"].get_metric_history(fold.info.run_id, "val_loss")
            assert [m.step for m in history] == [0, 1]


@pytest.mark.slow
def test_the_random_sampler_draws_inside_the_books_ranges(search):
    trials = [
        r
        for r in children_of(search["runs"], search["parent"].info.run_id)
        if "annlab.optuna.trial" in r.data.tags
    ]
    drawn = {tuple(r.data.params[k] for k in BOOK) for r in trials}
    assert len(drawn) == 2
    for trial in trials:
        params = trial.data.params
        assert params["optimizer.name"] == "sgd" and params["training.early_stopping.patience"] == "10"
        for key, (low, high) in BOOK.items():
            assert low <= float(params[key]) <= high, (key, params[key])
    assert search["best"]["trials"] == {"complete": 2, "pruned": 0, "fail": 0}


@pytest.mark.slow
def test_the_refit_is_trained_on_the_whole_training_split_and_promote_picks_it(search, monkeypatch):
    runs, parent, best = search["runs"], search["parent"], search["best"]
    (refit,) = [r for r in runs if r.data.tags.get("annlab.refit") == "true"]
    assert refit.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert refit.info.status == "FINISHED" and refit.info.run_name == "refit"
    assert refit.data.tags["annlab.refit.trial"] == str(best["best_trial"])
    assert refit.data.params["training.cv_folds"] == "0"
    for key, value in best["params"].items():
        assert refit.data.params[key] == str(value)
    assert {"test_loss", "test_mse", "test_r2"} <= set(refit.data.metrics)
    assert refit.data.tags["annlab.model_uri"].startswith("models:/")
    assert not children_of(runs, refit.info.run_id)  # no folds: one fit on the whole split
    # ranked by its configuration's CV score, the best trial's
    best_trial = search["client"].get_run(best["mlflow_run_id"])
    assert refit.data.metrics["objective_val_loss"] == pytest.approx(best_trial.data.metrics["cv_loss_mean"])
    assert best["best_value"] == pytest.approx(best_trial.data.metrics["cv_loss_mean"])

    # the parent: best params, CV score, the refit's run and test score, the tally
    metrics, tags = parent.data.metrics, parent.data.tags
    assert parent.info.status == "FINISHED"
    assert {k: parent.data.params[f"best.{k}"] for k in BOOK} == {
        k: str(v) for k, v in best["params"].items()
    }
    assert metrics["best_cv_loss_mean"] == pytest.approx(best["best_value"])
    assert "best_cv_loss_std" in metrics
    assert tags["annlab.refit.run_id"] == refit.info.run_id == best["refit"]["mlflow_run_id"]
    assert metrics["refit_test_mse"] == pytest.approx(refit.data.metrics["test_mse"])
    assert (metrics["sweep_jobs"], metrics["sweep_jobs_finished"]) == (3, 3)
    assert "annlab sweep: 3 jobs: 3 finished, 0 failed, 0 pruned" in search["out"].stdout

    # `annlab promote --parent-run` registers the refit: the only child with a model
    from annlab.tracking.registry import promote

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{search['project'] / 'mlflow.db'}")
    promoted = promote(parent_run_id=parent.info.run_id)
    assert promoted.run_id == refit.info.run_id
    assert promoted.metric == "objective_val_loss" and promoted.value == pytest.approx(best["best_value"])


@pytest.mark.slow
def test_a_single_run_cross_validates_then_trains_and_folds_do_not_depend_on_parallelism(
    search, workdir, compose
):
    """Outside a sweep: the K folds as child runs, then the model on the whole training split;
    the objective is the CV mean. Fitted here one after another, the folds score exactly as
    the sweep's parallel folds of the same configuration."""
    from annlab.data.cache import ensure_prepared
    from annlab.io import read_json
    from annlab.stages.train import train

    best = search["best"]
    overrides = [f"{k}={v}" for k, v in best["params"].items()]
    cfg = compose(
        "hparams_search=california_random_search",
        f"dataset.path={search['data']}",
        *TINY,
        "training.cv_jobs=1",
        "tracking.log_model=false",  # the refit's model is checked above
        *overrides,
    )
    line = train(cfg, data_dir=ensure_prepared(cfg), out_dir=workdir / "models")
    assert "2-fold CV val_loss" in line
    info = read_json(workdir / "models" / "run.json")
    assert (workdir / "models" / "model.keras").is_file() and (workdir / "models" / "cv.json").is_file()

    client = mlflow.MlflowClient()
    run_ = client.get_run(info["run_id"])
    folds = sorted(
        client.search_runs([run_.info.experiment_id], f"tags.mlflow.parentRunId = '{run_.info.run_id}'"),
        key=lambda f: f.data.tags["annlab.cv.fold"],
    )
    assert [f.data.tags["annlab.cv.fold"] for f in folds] == ["0", "1"]
    assert run_.data.metrics["cv_jobs"] == 1
    assert (
        info["objective"]["value"]
        == run_.data.metrics["objective_val_loss"]
        == run_.data.metrics["cv_loss_mean"]
    )
    assert {"val_loss", "train_seconds"} <= set(run_.data.metrics)  # then trained as usual

    sweep_folds = sorted(
        children_of(search["runs"], best["mlflow_run_id"]), key=lambda f: f.data.tags["annlab.cv.fold"]
    )
    for here, there in zip(folds, sweep_folds, strict=True):
        for key in ("fold_loss", "fold_mae"):
            assert here.data.metrics[key] == there.data.metrics[key], key


# -- quick checks -------------------------------------------------------------------------------


def test_a_bad_cv_folds_value_is_one_line(compose):
    with pytest.raises(AnnlabError) as err:
        compose("training.cv_folds=1")
    assert str(err.value) == "Expected `training.cv_folds` to be 0 or >= 2. Received: training.cv_folds=1."
    with pytest.raises(AnnlabError, match="model=perceptron"):
        compose("experiment=iris_perceptron", "training.cv_folds=3")
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "annlab-train"), "training.cv_folds=-2"],
        cwd=ROOT,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "annlab-train: error: Expected `training.cv_folds` to be 0 or >= 2. Received: training.cv_folds=-2."
    ]


def test_folds_are_scikit_learns_cv_folds_of_the_training_split_only():
    from sklearn.model_selection import KFold, StratifiedKFold

    from annlab.config.schema import Config
    from annlab.data.dataset import DatasetMeta
    from annlab.data.split import Splits
    from annlab.training.cv import fold_indices

    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4))
    labels = np.repeat([0, 1, 2], 10)
    cfg = Config()
    cfg.training.cv_folds = 3
    for task, y, splitter in (
        ("regression", rng.normal(size=30), KFold(3)),
        ("multiclass", labels, StratifiedKFold(3)),
    ):
        meta = DatasetMeta("t", task, [4], list("abcd"), class_names=["0", "1", "2"])
        splits = Splits((X, y), (X[:5], y[:5]), (X[:5], y[:5]), {"kind": "none"}, meta)
        folds = fold_indices(cfg, splits)
        expected = list(splitter.split(X, y))
        assert len(folds) == 3
        for (train, held), (e_train, e_held) in zip(folds, expected, strict=True):
            assert np.array_equal(train, e_train) and np.array_equal(held, e_held)
    assert list(folds[0][1]) != list(range(10))  # stratified: not the first 10 rows
    cfg.training.cv_folds = 40
    with pytest.raises(AnnlabError, match="<= the 30 training rows"):
        fold_indices(cfg, splits)


def test_the_cv_score_is_the_mean_of_the_held_out_counterpart_of_the_objective():
    from annlab.objective import held_out_metric
    from annlab.training.cv import CVResult, FoldResult

    folds = [
        FoldResult(i, 20, 10, {"loss": loss, "accuracy": acc}, {"epoch": [0.0]}, 1.0, 0)
        for i, (loss, acc) in enumerate([(0.5, 0.8), (0.3, 0.9), (0.4, 0.7)])
    ]
    cv = CVResult(folds, jobs=1, seconds=3.0)
    summary = cv.summary()
    assert summary["cv_loss_mean"] == pytest.approx(0.4) and summary["cv_accuracy_mean"] == pytest.approx(0.8)
    assert summary["cv_loss_std"] == pytest.approx(np.std([0.5, 0.3, 0.4]))
    assert held_out_metric("val_loss") == "loss" and held_out_metric("accuracy") == "accuracy"
    assert cv.objective("val_accuracy") == pytest.approx(0.8)
    with pytest.raises(AnnlabError, match="held-out counterpart"):
        cv.objective("val_auc")


def test_the_books_random_search_draws_inside_its_ranges_and_the_same_for_the_same_seed():
    import optuna
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from hydra_plugins.annlab_optuna_sweeper.search_space import parse_search_space

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        tree = compose("config", ["hparams_search=california_random_search"], return_hydra_config=True)
    sweeper = tree.hydra.sweeper
    assert sweeper.sampler._target_ == "optuna.samplers.RandomSampler" and sweeper.pruner is None
    assert sweeper.n_trials == 10 and sweeper.refit is True
    assert tree.training.cv_folds == 3 and tree.training.epochs == 100 and tree.optimizer.name == "sgd"
    assert tree.training.early_stopping.patience == 10 and tree.objective.metric == "val_loss"
    space, _ = parse_search_space(sweeper.params, [])

    def draws(seed: int) -> list[dict]:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(sampler=instantiate(sweeper.sampler, seed=seed))
        return [study.ask(space).params for _ in range(50)]

    first = draws(42)
    assert first == draws(42) and first != draws(43)
    for params in first:
        for key, (low, high) in BOOK.items():
            assert low <= params[key] <= high
    assert {p["model.n_hidden"] for p in first} == {0, 1, 2, 3}
    rates = np.log10([p["optimizer.learning_rate"] for p in first])
    assert rates.min() < -3 and rates.max() > -2  # log-uniform over two decades


def test_a_pruner_with_cross_validated_trials_is_refused_in_one_line():
    from hydra import compose, initialize_config_dir

    from hydra_plugins.annlab_optuna_sweeper.sweeper import AnnlabOptunaSweeper

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        tree = compose(
            "config", ["hparams_search=california_optuna", "training.cv_folds=3"], return_hydra_config=True
        )
    node = tree.hydra.sweeper
    sweeper = AnnlabOptunaSweeper(
        node.study_name, None, 2, None, node.sampler, node.pruner, node.params, None, node.refit
    )
    sweeper.config, sweeper.launcher = tree, object()
    with pytest.raises(AnnlabError) as err:
        sweeper._sweep([])
    assert str(err.value).startswith(
        "Expected `hydra.sweeper.pruner` to be null with training.cv_folds=3: cross-validated trials"
    )
    assert str(err.value).endswith("Received: hydra.sweeper.pruner=MedianPruner.")


def test_stopping_the_fold_workers_waits_for_the_thread_that_feeds_their_queue():
    """loky's call queue is fed by a daemon thread with multiprocessing's name for it (pinned
    here: `stop_workers` finds it by that name); stopping the workers leaves it ended, so it
    cannot race the interpreter's exit with the queue's semaphores half cleaned up."""
    from annlab.training import cv

    before = set(cv.queue_feeder_threads())
    executor = cv._workers(2)
    assert executor.submit(abs, -3).result(timeout=120) == 3
    started = set(cv.queue_feeder_threads()) - before
    assert started, f"no thread named {cv.QUEUE_FEEDER_THREAD!r} feeds loky's call queue"
    cv.stop_workers()
    assert not [t for t in started if t.is_alive()]
