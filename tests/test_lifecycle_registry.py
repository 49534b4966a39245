"""`annlab promote` registers the best run's model under the experiment's name with the alias
`champion`, and `mlflow models serve -m models:/NAME@champion` answers a real HTTP request on
loopback with `annlab predict`'s numbers (single-input and two-input Wide & Deep)."""

from __future__ import annotations

import json
import math

import mlflow
import numpy as np
import pandas as pd
import pytest

from annlab.errors import AnnlabError
from conftest import seed_store, tool_env
from lifecycle_support import (
    IRIS,
    SUBCLASSED,
    WIDE_DEEP,
    mlflow_server,
    raw_table,
    tracking_store,
    train_small,
)

pytestmark = pytest.mark.slow  # trains real models once per module
LEARNING_RATES = ("0.001", "0.05")


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory, empty_store) -> str:
    return f"sqlite:///{seed_store(empty_store, tmp_path_factory.mktemp('store') / 'mlruns.db')}"


@pytest.fixture(scope="module")
def lab(tmp_path_factory, store_uri):
    """Experiment `iris_lab`: two runs at different learning rates, plus a sweep (parent run
    with two children); experiment `diabetes_wd`: one two-input Wide & Deep run."""
    root = tmp_path_factory.mktemp("lab")
    common = (*IRIS, "experiment_name=iris_lab", "objective.metric=val_loss", "objective.direction=minimize")
    with tracking_store(store_uri):
        runs = [
            train_small(root / f"lr{lr}", *common, f"optimizer.learning_rate={lr}") for lr in LEARNING_RATES
        ]
        mlflow.set_tracking_uri(store_uri)
        experiment = mlflow.get_experiment_by_name("iris_lab").experiment_id
        parent = mlflow.MlflowClient().create_run(experiment, run_name="sweep").info.run_id
        mlflow.MlflowClient().set_terminated(parent, "FINISHED")
        children = [
            train_small(root / f"child{n}", *common, f"model.n_neurons=[{n}]", parent_run_id=parent)
            for n in (8, 16)
        ]
        wide_deep = train_small(root / "wd", *WIDE_DEEP, "experiment_name=diabetes_wd")
        subclassed = train_small(root / "sub", *SUBCLASSED, "experiment_name=diabetes_sub")
    return {
        "runs": runs,
        "parent": parent,
        "children": children,
        "wide_deep": wide_deep,
        "subclassed": subclassed,
    }


@pytest.fixture
def use_store(monkeypatch, store_uri):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri)
    mlflow.set_tracking_uri(store_uri)


def objective(run_id: str, key: str = "objective_val_loss") -> float:
    return mlflow.get_run(run_id).data.metrics[key]


def test_promote_picks_the_best_run_of_an_experiment(lab, use_store):
    from annlab.tracking.registry import promote

    all_runs = [t.run_id for t in lab["runs"] + lab["children"]]
    best = min(all_runs, key=objective)
    done = promote(experiment="iris_lab")
    assert (done.name, done.alias, done.run_id) == ("iris_lab", "champion", best)
    assert done.candidates == 4 and done.metric == "objective_val_loss"
    assert done.direction == "minimize" and math.isclose(done.value, objective(best))

    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias("iris_lab", "champion")
    assert str(version.version) == done.version and version.run_id == best
    assert version.tags["annlab.metric"] == "objective_val_loss"
    assert float(version.tags["annlab.metric_value"]) == pytest.approx(objective(best))
    assert version.tags["annlab.direction"] == "minimize"
    assert "objective_val_loss" in version.description and "best of 4 runs" in version.description

    # Promoting the same run again moves nothing and registers no second copy.
    again = promote(experiment="iris_lab")
    assert again.version == done.version
    assert len(client.search_model_versions("name = 'iris_lab'")) == 1


def test_promote_best_of_a_sweep_on_another_metric_and_by_run_id(lab, use_store):
    from annlab.tracking.registry import promote

    children = [t.run_id for t in lab["children"]]
    best_child = min(children, key=objective)
    done = promote(parent_run_id=lab["parent"], alias="sweep_best")
    assert done.run_id == best_child and done.candidates == 2

    # Another metric: higher test accuracy wins (the direction is guessed from its name).
    all_runs = [t.run_id for t in lab["runs"] + lab["children"]]
    top = max(objective(r, "test_accuracy") for r in all_runs)
    by_accuracy = promote(experiment="iris_lab", metric="test_accuracy", alias="accurate")
    assert by_accuracy.direction == "maximize" and by_accuracy.value == pytest.approx(top)

    chosen = lab["runs"][0].run_id
    direct = promote(run_id=chosen, alias="pinned")
    assert direct.run_id == chosen and direct.metric == "objective_val_loss"
    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias("iris_lab", "pinned").run_id == chosen
    assert client.get_model_version_by_alias("iris_lab", "sweep_best").run_id == best_child


def test_promote_errors_are_one_line(lab, use_store):
    from annlab.tracking.registry import promote

    with pytest.raises(AnnlabError, match="experiment 'nope' not found"):
        promote(experiment="nope")
    with pytest.raises(AnnlabError, match="not found"):
        promote(run_id="0" * 32)
    with pytest.raises(AnnlabError, match="no metric"):
        promote(run_id=lab["runs"][0].run_id, metric="no_such_metric", direction="maximize")
    with pytest.raises(AnnlabError, match="--direction"):
        promote(experiment="iris_lab", metric="epochs_run")
    with pytest.raises(AnnlabError, match="exactly one"):
        promote(run_id=lab["runs"][0].run_id, experiment="iris_lab")
    empty = mlflow.create_experiment("empty_lab")
    assert empty
    with pytest.raises(AnnlabError, match="no finished run with a logged model"):
        promote(experiment="empty_lab")


def test_served_champion_answers_like_annlab_predict(lab, use_store, workdir, store_uri):
    """A real `mlflow models serve` on a free loopback port, a real POST /invocations with the
    raw features (the body `annlab request` writes), and annlab predict's numbers back; the
    server's output holds no Keras progress bar (the pyfunc model predicts silently). The
    scoring server is a fresh process that imports nothing of annlab before loading: the
    subclassed model's pyfunc loader registers its class itself."""
    import requests

    from annlab.serving.predict import predict_file
    from annlab.serving.request import write_request
    from annlab.tracking.registry import promote

    env = tool_env({"MLFLOW_TRACKING_URI": store_uri})
    for trained, experiment in (
        (lab["wide_deep"], "diabetes_wd"),
        (lab["runs"][1], "iris_lab"),
        (lab["subclassed"], "diabetes_sub"),
    ):
        promote(run_id=trained.run_id, name=f"{experiment}_served")
        uri = f"models:/{experiment}_served@champion"
        data = raw_table(trained, workdir / f"{experiment}.csv")
        predict_file(uri, data, workdir / f"{experiment}_pred.csv")
        expected = pd.read_csv(workdir / f"{experiment}_pred.csv")
        write_request(uri, data, workdir / f"{experiment}.json")
        body = (workdir / f"{experiment}.json").read_text()
        with mlflow_server(uri, env, workdir / f"{experiment}.log") as url:
            answer = requests.post(
                f"{url}/invocations", data=body, timeout=60, headers={"Content-Type": "application/json"}
            )
        assert answer.status_code == 200, answer.text[:2000]
        log = (workdir / f"{experiment}.log").read_text()
        assert "━" not in log and "/step" not in log, f"a progress bar per request:\n{log[-1500:]}"
        predictions = answer.json()["predictions"]
        if experiment != "iris_lab":  # two outputs, by name
            np.testing.assert_allclose(
                np.asarray(predictions["output"]).ravel(), expected["predicted"], rtol=1e-6
            )
            np.testing.assert_allclose(
                np.asarray(predictions["aux_output"]).ravel(), expected["aux_output"], rtol=1e-6
            )
        else:  # class probabilities, in class order
            proba = np.asarray(predictions)
            names = np.asarray(json.loads((trained.models / "meta.json").read_text())["class_names"])
            assert names[proba.argmax(axis=1)].tolist() == expected["predicted"].tolist()
            np.testing.assert_allclose(proba.max(axis=1), expected["probability"], rtol=1e-6)


def test_cli_promote_prints_one_summary_line(lab, use_store, capsys):
    from annlab.cli import main

    main(["promote", "--experiment", "iris_lab", "--alias", "from_cli"])
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("promote: run ")
    assert "models:/iris_lab@from_cli" in out[0] and "best of 4 runs" in out[0]
    with pytest.raises(SystemExit) as exit_info:
        main(["promote", "--experiment", "missing_lab"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [line for line in err if line.startswith("annlab promote: error:")] and len(err) == 1
