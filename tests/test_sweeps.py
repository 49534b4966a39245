"""Sweeps and scale-out, as a user runs them: Hydra grid sweeps (basic and joblib launchers)
with an MLflow parent run per sweep, annlab's Optuna sweeper (best params, resume, pruning,
failed trials), DVC's experiment queue, and `annlab compare`. The Ray launcher is tested
against the team server (tests/test_team_server.py), the setup it is documented for.

Everything runs for real on tiny data (digits / iris, 2-4 epochs, small models)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import mlflow
import optuna
import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser

from annlab.errors import AnnlabError
from conftest import ROOT, project_env, run

TINY = [
    "training.epochs=2",
    "model.n_neurons=16",
    "tracking.log_model=false",
    "training.intra_op_threads=1",
    "training.inter_op_threads=1",
]


def client_for(project: Path) -> mlflow.MlflowClient:
    """The project's default MLflow store (sqlite:///mlflow.db in its root)."""
    return mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")


def sweep_of(client: mlflow.MlflowClient, experiment: str) -> tuple:
    """(the one parent run, its child runs) of an experiment holding one sweep."""
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment}"
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("annlab.sweep.role") == "parent"]
    assert len(parents) == 1, [r.data.tags for r in runs]
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(runs) - 1, "every other run is a child of the sweep's parent"
    return parent, children


def config_of(run_) -> tuple[str, str, str]:
    p = run_.data.params
    return p["dataset.name"], p["model.n_hidden"], p["optimizer.learning_rate"]


# -- grid sweeps: basic and joblib launchers ------------------------------------------------------


def assert_failed_sweep(out, jobs: int, finished: int, failed: int, pruned: int, reason: str) -> None:
    """A sweep with failed jobs: every job ran, the tally and each reason are printed, exit 1."""
    text = out.stdout + out.stderr
    assert out.returncode == 1, text[-3000:]
    assert f"annlab sweep: {jobs} jobs: {finished} finished, {failed} failed, {pruned} pruned" in text
    assert text.count(f"failed: {reason}") == failed, text[-3000:]
    assert f"{failed} of {jobs} jobs of the sweep failed" in out.stderr


@pytest.mark.slow
def test_grid_sweep_sequential_and_joblib_with_parent_runs(project):
    """4 jobs (digits, iris x 1 or -1 hidden layers) with the basic launcher, then the same grid
    with 2 joblib workers (each runs 2 jobs in one process). The 2 jobs with n_hidden=-1 fail
    with their reason while the others run; the sweep exits 1. One parent per sweep, FAILED,
    recording the counts and the best child; children tagged with job and overrides; the same
    metrics per config both ways (a reused worker starts each job clean)."""
    env = project_env(project)
    grid = ["dataset=digits,iris", "model.n_hidden=1,-1", *TINY]
    out = run(["annlab-train", "-m", *grid, "experiment_name=sequential"], project, env, check=False)
    assert_failed_sweep(out, 4, 2, 2, 0, "Expected `model.n_hidden` >= 0.")
    out = run(
        [
            "annlab-train",
            "-m",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            *grid,
            "experiment_name=parallel",
        ],
        project,
        env,
        check=False,
    )
    assert "Joblib" in out.stdout + out.stderr
    assert_failed_sweep(out, 4, 2, 2, 0, "Expected `model.n_hidden` >= 0.")

    client = client_for(project)
    results = {}
    for name in ("sequential", "parallel"):
        parent, children = sweep_of(client, name)
        assert parent.info.status == "FAILED"
        assert parent.data.tags["annlab.failure_reason"] == "2 of 4 jobs failed"
        assert parent.data.tags["annlab.sweep.failures"].count("Expected `model.n_hidden` >= 0.") == 2
        assert {
            k: parent.data.metrics[f"sweep_jobs{k}"] for k in ("", "_finished", "_failed", "_pruned")
        } == {"": 4, "_finished": 2, "_failed": 2, "_pruned": 0}
        assert len(children) == 2 and {c.info.status for c in children} == {"FINISHED"}
        assert {config_of(c)[:2] for c in children} == {("digits", "1"), ("iris", "1")}
        assert sorted(c.data.tags["annlab.sweep.job"] for c in children) == ["0", "2"]
        for child in children:
            overrides = child.data.tags["annlab.hydra.overrides"]
            assert f"dataset={child.data.params['dataset.name']}" in overrides
            assert f"model.n_hidden={child.data.params['model.n_hidden']}" in overrides
            assert child.data.tags["mlflow.runName"] == f"job-{child.data.tags['annlab.sweep.job']}"
            assert "test_accuracy" in child.data.metrics
        # the parent: the sweep's settings as params, its config as an artifact, the best child
        params = parent.data.params
        assert params["sweep.dataset"] == "digits,iris" and params["sweep.model.n_hidden"] == "1,-1"
        assert params["training.epochs"] == "2" and "model.n_hidden" not in params
        artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "sweep")}
        assert {"sweep/config.yaml", "sweep/hydra.yaml", "sweep/outcomes.json"} <= artifacts
        best = max(children, key=lambda c: c.data.metrics["objective_val_accuracy"])
        assert parent.data.tags["annlab.sweep.best_run_id"] == best.info.run_id
        assert parent.data.metrics["best_val_accuracy"] == pytest.approx(
            best.data.metrics["objective_val_accuracy"]
        )
        results[name] = {config_of(c): c.data.metrics["val_accuracy"] for c in children}
    assert results["parallel"] == pytest.approx(results["sequential"])

    # `annlab compare` on the sweep: a ranked table and the figures
    parent, children = sweep_of(client, "sequential")
    out = run(["annlab", "compare", "--parent-run", parent.info.run_id, "--top", "2"], project, env)
    assert "compare: 2 runs of sweep" in out.stdout
    folder = project / "reports" / "comparison" / parent.info.run_name
    table = (folder / "comparison.csv").read_text().splitlines()
    assert len(table) == 3
    header = table[0].split(",")
    assert {"dataset.name", "objective_val_accuracy", "test_accuracy"} <= set(header)
    best = max(children, key=lambda c: c.data.metrics["objective_val_accuracy"])
    assert table[1].split(",")[header.index("run_id")] == best.info.run_id
    markdown = (folder / "comparison.md").read_text()
    assert "| rank |" in markdown and "metric_vs_params.png" in markdown
    for figure in ("metric_vs_params.png", "learning_curves_top.png"):
        assert (folder / figure).stat().st_size > 5000, figure


# -- Optuna -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_optuna_search_records_best_and_resumes(project):
    env = project_env(project)
    search = [
        "hparams_search=digits_optuna",
        "dataset=iris",
        "training.epochs=2",
        "tracking.log_model=false",
        "hydra.sweeper.pruner=null",
    ]
    run(["annlab-train", "-m", *search, "hydra.sweeper.n_trials=2"], project, env)

    best_file = project / "reports" / "hparams_search" / "digits_optuna_best.yaml"
    best = yaml.safe_load(best_file.read_text())
    assert best["objective"] == {"metric": "val_accuracy", "direction": "maximize"}
    assert set(best["params"]) == {"model.n_hidden", "model.n_neurons", "optimizer.learning_rate"}
    assert 0 <= best["params"]["model.n_hidden"] <= 3 and 1 <= best["params"]["model.n_neurons"] <= 99
    assert 3e-4 <= best["params"]["optimizer.learning_rate"] <= 3e-2
    assert best["trials"] == {"complete": 2, "pruned": 0, "fail": 0}

    client = client_for(project)
    parent, children = sweep_of(client, "digits_mlp")
    assert len(children) == 2
    assert parent.data.params["best.model.n_neurons"] == str(best["params"]["model.n_neurons"])
    assert parent.data.metrics["optuna_best_val_accuracy"] == pytest.approx(best["best_value"])
    assert parent.data.tags["annlab.optuna.best_run_id"] == best["mlflow_run_id"]
    assert {c.data.tags["annlab.optuna.trial"] for c in children} == {"0", "1"}
    best_run = client.get_run(best["mlflow_run_id"])
    assert best_run.data.params["model.n_neurons"] == str(best["params"]["model.n_neurons"])

    # Rerun with a larger budget: the stored study resumes and only the missing trial runs.
    out = run(["annlab-train", "-m", *search, "hydra.sweeper.n_trials=3"], project, env)
    assert "2 of 3 trials done" in out.stdout + out.stderr
    study = optuna.load_study(
        study_name="digits_optuna", storage=f"sqlite:///{project / 'multirun' / 'optuna.db'}"
    )
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert study.trials[2].params != study.trials[0].params  # not the first draws again
    exp = client.get_experiment_by_name("digits_mlp")
    parents = client.search_runs([exp.experiment_id], "tags.`annlab.sweep.role` = 'parent'")
    assert len(parents) == 2
    latest = max(parents, key=lambda r: r.info.start_time)
    assert latest.data.metrics["sweep_jobs"] == 1


PRUNE_SEARCH = """\
# @package _global_
defaults:
  - override /hydra/sweeper: annlab_optuna
hydra:
  sweeper:
    study_name: prune_test
    n_trials: 4
    sampler:
      _target_: optuna.samplers.BruteForceSampler
      seed: 0
    pruner:
      _target_: optuna.pruners.ThresholdPruner
      lower: 0.5
      n_warmup_steps: 1
    params:
      model.n_neurons: choice(16, 0)
      optimizer.learning_rate: choice(0.05, 0.00001)
"""


@pytest.mark.slow
def test_optuna_prunes_bad_trials_and_goes_on_after_failed_ones(project):
    """Every combination once: n_neurons=0 is a user error (2 trials FAIL, the search goes on);
    a learning rate of 1e-5 stays under the pruner's threshold and is pruned after epoch 2."""
    (project / "conf" / "hparams_search" / "prune_test.yaml").write_text(PRUNE_SEARCH)
    env = project_env(project)
    out = run(
        [
            "annlab-train",
            "-m",
            "hparams_search=prune_test",
            "training.epochs=4",
            "tracking.log_model=false",
            "model.n_hidden=1",
        ],
        project,
        env,
        check=False,
    )
    assert_failed_sweep(out, 4, 1, 2, 1, "Expected `model.n_neurons` to be an integer >= 1")

    study = optuna.load_study(
        study_name="prune_test", storage=f"sqlite:///{project / 'multirun' / 'optuna.db'}"
    )
    states = {
        (t.params["model.n_neurons"], t.params["optimizer.learning_rate"]): t.state.name for t in study.trials
    }
    assert states == {(16, 0.05): "COMPLETE", (16, 1e-5): "PRUNED", (0, 0.05): "FAIL", (0, 1e-5): "FAIL"}
    pruned = next(t for t in study.trials if t.state.name == "PRUNED")
    assert sorted(pruned.intermediate_values) == [0, 1]  # reported per epoch, stopped at 2

    best = yaml.safe_load((project / "reports/hparams_search/prune_test_best.yaml").read_text())
    assert best["params"] == {"model.n_neurons": 16, "optimizer.learning_rate": 0.05}
    assert best["trials"] == {"complete": 1, "pruned": 1, "fail": 2}

    parent, children = sweep_of(client_for(project), "digits_mlp")
    assert parent.info.status == "FAILED" and parent.data.metrics["sweep_jobs_failed"] == 2
    assert len(children) == 2  # the failed trials never started a run
    by_state = {c.data.tags.get("annlab.optuna.state", "COMPLETE"): c for c in children}
    assert by_state["PRUNED"].data.metrics["epochs_run"] == 2
    assert "test_accuracy" not in by_state["PRUNED"].data.metrics  # not evaluated
    assert parent.data.tags["annlab.sweep.best_run_id"] == by_state["COMPLETE"].info.run_id
    assert parent.data.metrics["sweep_jobs_pruned"] == 1


# -- DVC experiment queue ------------------------------------------------------------------------


@pytest.mark.slow
def test_dvc_queue_runs_both_experiments_into_the_project_store(project):
    """Queued experiments run in .dvc/tmp/exps copies: their MLflow runs and artifacts must land
    in the project's own store, and `dvc exp show` must compare their params and metrics."""
    env = project_env(project)
    run(
        [
            "dvc",
            "exp",
            "run",
            "--queue",
            "-S",
            "model.n_neurons=30,100",
            "-S",
            "training.epochs=2",
            "-S",
            "tracking.log_model=false",
        ],
        project,
        env,
    )
    run(["dvc", "queue", "start", "-j", "2"], project, env)
    deadline = time.monotonic() + 480
    while True:
        status = run(["dvc", "queue", "status"], project, env).stdout
        if "Queued" not in status and "Running" not in status:
            break
        assert time.monotonic() < deadline, status
        time.sleep(4)  # each `dvc queue status` costs a DVC start, ~1 s of CPU
    failed = [line.split()[1] for line in status.splitlines() if " Failed" in line]
    logs = [run(["dvc", "queue", "logs", name], project, env, check=False).stdout[-3000:] for name in failed]
    assert status.count("Success") == 2, status + "\n".join(logs)

    shown = json.loads(run(["dvc", "exp", "show", "--json"], project, env).stdout)
    experiments = [e for rev in shown for e in (rev.get("experiments") or [])]
    found = {}
    for exp in experiments:
        data = exp["revs"][0]["data"]
        neurons = data["params"]["params.yaml"]["data"]["model"]["n_neurons"]
        found[neurons] = data["metrics"]["reports/metrics.json"]["data"]["test_accuracy"]
    assert set(found) == {30, 100} and all(0 <= v <= 1 for v in found.values())

    client = client_for(project)
    runs = client.search_runs([client.get_experiment_by_name("digits_mlp").experiment_id])
    assert sorted(r.data.params["model.n_neurons"] for r in runs) == ["100", "30"]
    for r in runs:
        assert r.info.status == "FINISHED" and "test_accuracy" in r.data.metrics
        assert r.info.artifact_uri.startswith(str(project / "mlruns")), r.info.artifact_uri
        assert (Path(r.info.artifact_uri) / "history.csv").is_file()
    assert not list((project / ".dvc" / "tmp").rglob("mlflow.db"))


# -- quick checks -------------------------------------------------------------------------------


def test_search_spaces_in_hydras_override_grammar():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from hydra_plugins.annlab_optuna_sweeper.search_space import as_override, parse_search_space

    space, fixed = parse_search_space(
        {
            "model.n_hidden": "range(0, 4)",
            "model.n_neurons": "tag(int, interval(1, 99))",
            "optimizer.learning_rate": "tag(log, interval(3e-4, 3e-2))",
            "training.epochs": 20,
        },
        ["optimizer=choice(sgd,adam)", "training.epochs=5", "model.n_neurons=10,30"],
    )
    assert space["model.n_hidden"] == IntDistribution(0, 3)
    assert space["optimizer.learning_rate"] == FloatDistribution(3e-4, 3e-2, log=True)
    assert space["optimizer"] == CategoricalDistribution(["sgd", "adam"])
    assert space["model.n_neurons"] == CategoricalDistribution([10, 30])  # command line wins
    assert fixed == ["training.epochs=5"]
    assert as_override("optimizer.learning_rate", 0.00123) == "optimizer.learning_rate=0.00123"
    assert as_override("training.deterministic", False) == "training.deterministic=false"
    with pytest.raises(AnnlabError, match="log interval above 0"):
        parse_search_space({"optimizer.learning_rate": "tag(log, interval(0, 1))"}, [])
    # list choices travel as override text that parses back to the same lists
    space, _ = parse_search_space({"model.n_neurons": "choice([300,100],[64], {a: 1})"}, [])
    texts = space["model.n_neurons"].choices
    assert texts == ("[300,100]", "[64]", "{a:1}")
    parsed = OverridesParser.create().parse_overrides([f"model.n_neurons={texts[0]}"])[0].value()
    assert parsed == [300, 100]


def test_a_trial_opened_by_its_storage_id_in_another_study_object_is_the_same_trial(tmp_path):
    """Pins the Optuna internal that annlab.sweeps.optuna_ids reads: a job process opens the
    sweeper's trial by storage id and its reports reach that trial."""
    from annlab.sweeps.optuna_ids import storage_id

    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="pin", storage=url)
    asked = study.ask()
    elsewhere = optuna.load_study(study_name="pin", storage=url)
    optuna.trial.Trial(elsewhere, storage_id(asked)).report(0.25, step=3)
    assert study.trials[asked.number].intermediate_values == {3: 0.25}
    assert storage_id(study.trials[asked.number]) == storage_id(asked)


def test_the_books_searches_compose_and_the_sweeper_is_a_hydra_plugin():
    from hydra.core.plugins import Plugins
    from hydra.plugins.sweeper import Sweeper

    from annlab.config.loading import compose_tree

    names = {p.__name__ for p in Plugins.instance().discover(Sweeper)}
    assert "AnnlabOptunaSweeper" in names
    for name, experiment, metric in [
        ("california_optuna", "california_mlp", "val_loss"),
        ("fashion_mnist_optuna", "fashion_mnist_optuna", "val_accuracy"),
    ]:
        tree = compose_tree([f"hparams_search={name}"], config_dir=ROOT / "conf")
        assert tree.experiment_name == experiment and tree.objective.metric == metric
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        tree = compose("config", ["hparams_search=california_optuna"], return_hydra_config=True)
    params = tree.hydra.sweeper.params  # the book's randomized search
    assert params["model.n_hidden"] == "range(0, 4)"
    assert params["model.n_neurons"] == "tag(int, interval(1, 99))"
    assert params["optimizer.learning_rate"] == "tag(log, interval(3e-4, 3e-2))"
    assert tree.hydra.sweeper._target_.endswith("AnnlabOptunaSweeper")


def test_default_store_of_a_queued_dvc_experiment_is_the_project_root(tmp_path, monkeypatch):
    from annlab.config.schema import TrackingConfig
    from annlab.tracking.store import tracking_uri

    root, copy = tmp_path / "project", tmp_path / "project" / ".dvc" / "tmp" / "exps" / "x"
    copy.mkdir(parents=True)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir(copy)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    assert tracking_uri(TrackingConfig()) == "sqlite:///mlflow.db"
    monkeypatch.setenv("DVC_ROOT", str(root))
    assert tracking_uri(TrackingConfig()) == f"sqlite:///{root.resolve()}/mlflow.db"
    assert tracking_uri(TrackingConfig(uri="sqlite:////abs/m.db")) == "sqlite:////abs/m.db"
    assert tracking_uri(TrackingConfig(uri="http://127.0.0.1:5000")) == "http://127.0.0.1:5000"
    monkeypatch.chdir(root)  # plain `dvc repro`: DVC_ROOT is the working directory
    assert tracking_uri(TrackingConfig()) == "sqlite:///mlflow.db"


def test_compare_names_a_missing_experiment_in_one_line(tmp_path):
    from annlab.reporting.compare import compare_runs

    with pytest.raises(AnnlabError, match="experiment 'nope' not found") as err:
        compare_runs(experiment="nope")
    assert "\n" not in str(err.value)
    with pytest.raises(AnnlabError, match="exactly one"):
        compare_runs()
