"""End to end, as a user runs it: `dvc repro` in a fresh git repo, the MLflow run it leaves,
a no-op second repro, `dvc exp run -S` rerunning only what a training setting affects, and
sharing through a DVC remote (push, lose the cache and outputs, pull, nothing to rerun)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pytest

from browser import OFFLINE_FLAGS, dump_dom, screenshot
from conftest import project_env, run

STAGES = ["prepare", "split", "train", "evaluate", "report"]
OUTPUT_FILES = [  # what the first `dvc repro` leaves (and `dvc pull` brings back)
    "data/raw/arrays.npz",
    "data/raw/meta.json",
    "data/processed/train.npz",
    "data/processed/valid.npz",
    "data/processed/test.npz",
    "data/processed/scaler.json",
    "models/model.keras",
    "models/history.csv",
    "models/run.json",
    "reports/metrics.json",
    "reports/report.md",
    "reports/report.html",
    "reports/figures/learning_curves.png",
]
CACHED_OUTPUTS = ["data/raw", "data/processed", "models", "reports/evaluation", "reports/figures"]
CANVAS = re.compile(r'<canvas width="(\d+)" height="(\d+)" class="marks"')


def ran_stages(output: str) -> list[str]:
    return re.findall(r"Running stage '(\w+)'", output)


@pytest.mark.slow
def test_dvc_repro_end_to_end(cloned_project):
    project = cloned_project
    # asynchronous MLflow logging on: stages that skip the interpreter's teardown must still
    # flush what MLflow queued (the epoch and test metrics checked below)
    env = project_env(project, MLFLOW_ENABLE_ASYNC_LOGGING="true")
    first = run(["dvc", "repro"], project, env)
    assert ran_stages(first.stdout) == STAGES

    for path in OUTPUT_FILES:
        assert (project / path).is_file(), path
    scaler = json.loads((project / "data/processed/scaler.json").read_text())
    assert scaler["kind"] == "standard" and len(scaler["mean"]) == 8
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.85, metrics
    assert "learning_curves.png" in (project / "reports/report.md").read_text()
    shown = run(["dvc", "metrics", "show", "--json"], project, env)
    assert "test_accuracy" in shown.stdout

    # The MLflow run, in MLflow's default store in the project root.
    run_id = json.loads((project / "models/run.json").read_text())["run_id"]
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    found = mlflow.get_run(run_id)
    assert found.info.status == "FINISHED"
    assert mlflow.get_experiment(found.info.experiment_id).name == "digits_mlp"
    params = found.data.params
    assert params["optimizer.learning_rate"] == "0.01" and params["model.n_hidden"] == "2"
    assert params["dataset.name"] == "digits"
    history = mlflow.MlflowClient().get_metric_history(run_id, "val_accuracy")
    assert len(history) == 30 and sorted(m.step for m in history) == list(range(30))
    assert found.data.metrics["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    tags = found.data.tags
    assert re.fullmatch(r"[0-9a-f]{40}", tags["mlflow.source.git.commit"])
    assert tags["dvc.split.data/processed"], "the DVC hash of the processed data is a tag"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}
    assert {"config", "model_summary.txt", "history.csv", "figures"} <= artifacts
    model_uri = tags["annlab.model_uri"]
    pyfunc = mlflow.pyfunc.load_model(model_uri)
    assert pyfunc.metadata.signature is not None
    example = pyfunc.input_example
    assert example is not None
    probabilities = pyfunc.predict(np.asarray(example))
    assert probabilities.shape == (len(example), 10)

    # Nothing changed: nothing runs.
    second = run(["dvc", "repro"], project, env)
    assert ran_stages(second.stdout) == []
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-qm", "first run"], project, env)

    assert_code_edits_rerun_exactly_their_stages(project, env)
    assert_a_failed_experiment_leaves_a_way_back(project, env)

    # A training setting: only train, evaluate and report rerun.
    changed = run(
        ["dvc", "exp", "run", "-S", "optimizer.learning_rate=0.05", "-S", "training.epochs=5"], project, env
    )
    assert ran_stages(changed.stdout) == ["train", "evaluate", "report"]
    table = run(["dvc", "exp", "show", "--json"], project, env).stdout
    assert "0.05" in table and "test_accuracy" in table
    runs = mlflow.search_runs(experiment_names=["digits_mlp"], output_format="list")
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    plots = run(["dvc", "plots", "show"], project, env)
    assert "failed" not in plots.stdout + plots.stderr
    assert_plots_render_offline(project, env, project.parent / "browser")
    assert "dvc_plots" not in run(["git", "status", "--porcelain"], project, env).stdout

    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-qm", "the experiment"], project, env)  # dvc.lock, metrics, report
    assert_push_remove_pull_leaves_nothing_to_rerun(project, env, project.parent / "remote")


def assert_push_remove_pull_leaves_nothing_to_rerun(project, env, remote) -> None:
    """Push the outputs to a local-folder remote, lose the cache and every output, pull them
    back: the pipeline is up to date."""
    run(["dvc", "remote", "add", "-d", "local", str(remote)], project, env)
    pushed = run(["dvc", "push"], project, env)
    assert re.search(r"\d+ files? pushed", pushed.stdout), pushed.stdout
    assert any(remote.rglob("*")), "the remote holds the pushed files"
    shutil.rmtree(project / ".dvc" / "cache")
    for out in CACHED_OUTPUTS:
        shutil.rmtree(project / out)
    missing = run(["dvc", "status"], project, env)
    assert "deleted" in missing.stdout, missing.stdout
    run(["dvc", "pull"], project, env)
    for path in [*OUTPUT_FILES, "models/meta.json", "reports/evaluation/predictions.csv"]:
        assert (project / path).is_file(), path
    status = run(["dvc", "status"], project, env)
    assert "up to date" in status.stdout, status.stdout
    assert ran_stages(run(["dvc", "repro"], project, env).stdout) == []


def assert_plots_render_offline(project, env, scratch) -> None:
    """`dvc plots show`'s page (DVC's own markup in the project's template) draws every chart
    in headless Chromium with no network; DVC's default page, which loads Vega from a CDN,
    draws none there (so the check can tell)."""
    from dvc_render.html import PAGE_HTML

    page = project / "dvc_plots" / "index.html"
    text = page.read_text()
    charts = text.count("vegaEmbed(")
    assert charts >= 3 and "cdn.jsdelivr" not in text and "<script src=" not in text
    dom = dump_dom(page.as_uri(), scratch / "offline", *OFFLINE_FLAGS, budget_ms=10000)
    canvases = [(int(w), int(h)) for w, h in CANVAS.findall(dom)]
    assert len(canvases) == charts, "vega-embed drew every chart, offline"
    # Loss, accuracy and the confusion matrix have data (predicted-against-actual is for
    # regression runs and stays empty here).
    assert sum(w > 200 and h > 200 for w, h in canvases) >= 3, canvases
    shot = screenshot(page.as_uri(), scratch / "shot", scratch / "plots.png", (1000, 1400), *OFFLINE_FLAGS)
    from PIL import Image

    with Image.open(shot) as image:
        assert np.asarray(image.convert("L"), dtype=np.float32).std() > 20, "the charts are not blank"

    scratch.mkdir(exist_ok=True)
    (scratch / "default.html").write_text(PAGE_HTML)
    cdn = project / "cdn_plots"
    default = ["--html-template", str(scratch / "default.html")]
    run(["dvc", "plots", "show", *default, "-o", str(cdn)], project, env)
    assert "cdn.jsdelivr" in (cdn / "index.html").read_text()
    dom = dump_dom((cdn / "index.html").as_uri(), scratch / "cdn", *OFFLINE_FLAGS, budget_ms=10000)
    assert not CANVAS.findall(dom), "the CDN page draws nothing with no network"


def changed_stages(project, env) -> set[str]:
    return set(json.loads(run(["dvc", "status", "--json"], project, env).stdout or "{}"))


def assert_code_edits_rerun_exactly_their_stages(project, env) -> None:
    """Editing a project file makes exactly the stages whose modules import it out of date."""
    from annlab.code_deps import import_closure
    from conftest import ROOT

    closures = {s: {p.relative_to(ROOT) for p in import_closure(f"annlab.stages.{s}")} for s in STAGES}
    for name in ("reporting/figures.py", "evaluation/metrics.py", "models/heads.py", "io.py"):
        path = Path("src/annlab") / name
        expected = {stage for stage, files in closures.items() if path in files}
        assert expected, name
        with open(project / path, "a") as handle:
            handle.write("# edited\n")
        assert changed_stages(project, env) == expected, name
        run(["git", "checkout", "--", str(path)], project, env)
    assert changed_stages(project, env) == set()


def assert_a_failed_experiment_leaves_a_way_back(project, env) -> None:
    """A failed `dvc exp run` leaves the failed stage's outputs removed (by DVC) and params.yaml
    rewritten; the error line names the command that brings the committed pipeline back."""
    failed = run(
        ["dvc", "exp", "run", "-S", "experiment=california_mlp", "-S", "dataset.path=/no/cal_housing.data"],
        project,
        env,
        check=False,
    )
    assert failed.returncode != 0
    errors = [line for line in failed.stderr.splitlines() if line.startswith("annlab prepare: error:")]
    assert len(errors) == 1 and "`dataset.path`='/no/cal_housing.data'" in errors[0], failed.stderr
    way_back = re.search(r"`(git checkout params.yaml && dvc repro)`", errors[0]).group(1)
    assert not (project / "data/raw").exists()  # what the README says a failure leaves
    again = run(["bash", "-c", way_back], project, env)
    assert ran_stages(again.stdout) == []  # restored from DVC's run cache, nothing retrained
    assert (project / "data/raw/arrays.npz").is_file()
    assert changed_stages(project, env) == set()


def test_stages_that_do_not_train_never_import_tensorflow(workdir):
    """prepare, split and report stay fast: TensorFlow's import alone takes seconds."""
    import subprocess
    import sys

    from annlab.config.params import write_params
    from conftest import ROOT, tool_env

    write_params(workdir / "params.yaml", ["training.epochs=1"], config_dir=ROOT / "conf")
    code = (
        "import sys\n"
        "from annlab.config import load_params\n"
        "from annlab.stages.prepare import prepare\n"
        "from annlab.stages.split import split\n"
        "cfg = load_params()\n"
        "prepare(cfg); split(cfg)\n"
        "import annlab.stages.report, annlab.stages.evaluate, annlab.stages.train\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, env=tool_env(), check=True
    )
    assert proc.stdout.strip() == "[]"


def test_the_installed_ml_dtypes_is_one_that_imports_without_registering_for_half_a_second():
    """pyproject.toml keeps ml_dtypes (TensorFlow and Keras import it) below 0.7: 0.7.0
    registers its NumPy ufunc loops in ~0.6 s of CPU at import (NumPy's PyUFunc_AddLoop scans
    the loops already registered), 0.6 in ~0.01 s, and every TensorFlow process pays it. This
    fails when an upgrade brings 0.7 back: measure its import (`python -X importtime -c
    "import ml_dtypes"`) before lifting the bound."""
    from importlib.metadata import version

    from packaging.version import Version

    assert Version(version("ml_dtypes")) < Version("0.7"), "pip install -e . (ml_dtypes<0.7)"


@pytest.mark.slow
def test_keras_loads_without_its_optional_scikit_learn_matplotlib_and_pandas_parts():
    """Pins what annlab.quiet_tensorflow relies on: Keras imports without scikit-learn,
    matplotlib and pandas when they are absent at its import, trains and predicts on NumPy
    arrays, and all three import normally after."""
    import subprocess
    import sys

    from conftest import tool_env

    code = (
        "import sys\n"
        "from annlab.quiet_tensorflow import quiet_tensorflow\n"
        "quiet_tensorflow()\n"
        "assert 'keras' in sys.modules and 'sklearn' not in sys.modules\n"
        "assert 'matplotlib' not in sys.modules and 'pandas' not in sys.modules\n"
        "import keras, numpy as np\n"
        "m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])\n"
        "m.compile(loss='mse'); m.fit(np.ones((4, 2)), np.ones(4), verbose=0)\n"
        "assert m.predict(np.ones((3, 2)), verbose=0).shape == (3, 1)\n"
        "import sklearn.linear_model, matplotlib.pyplot, pandas\n"
        "assert pandas.DataFrame({'a': [1]}).shape == (1, 1)\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=tool_env())
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
    assert proc.stderr.strip() == ""  # TensorFlow's start-up lines silenced
