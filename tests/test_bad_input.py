"""Bad input: one clear line naming the setting or file, a non-zero exit, no stage output
created or changed, and no MLflow run left RUNNING. Each case runs a real stage process."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import mlflow
import numpy as np
import pandas as pd
import pytest

from annlab.config.params import write_params
from conftest import ROOT, run, tool_env
from datafiles import idx_bytes, write_idx_set

OUTPUTS = ("data", "models", "reports")
pytestmark = pytest.mark.slow  # each case is a real process


def stage_env(project: Path, **extra: str) -> dict[str, str]:
    return tool_env({"MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}", **extra})


def run_stage(project: Path, stage: str, env: dict[str, str] | None = None, check: bool = True):
    return run(["python", "-m", f"annlab.stages.{stage}"], project, env or stage_env(project), check=check)


def make_project(root: Path, overrides: list[str], stages: list[str]) -> Path:
    """A project folder with `stages` run by the stages' own code, in this process (the tests
    here are about the failing stage's process, not these), into the project's mlflow.db."""
    from annlab.config import load_params
    from annlab.stages.evaluate import evaluate_stage
    from annlab.stages.prepare import prepare
    from annlab.stages.report import report
    from annlab.stages.split import split
    from annlab.stages.train import train

    functions = {"prepare": prepare, "split": split, "train": train, "evaluate": evaluate_stage}
    functions["report"] = report
    shutil.copytree(ROOT / "conf", root / "conf")
    write_params(root / "params.yaml", ["training.epochs=2", *overrides], config_dir=root / "conf")
    old_cwd, old_uri = Path.cwd(), os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    os.chdir(root)
    try:
        cfg = load_params()
        for stage in stages:
            functions[stage](cfg)
    finally:
        os.chdir(old_cwd)
        if old_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old_uri
    return root


@pytest.fixture(scope="module")
def projects(tmp_path_factory) -> dict[str, Path]:
    """The default pipeline run once (digits, 2 epochs), and a prepared regression data set."""
    return {
        "digits": make_project(
            tmp_path_factory.mktemp("digits"), [], ["prepare", "split", "train", "evaluate", "report"]
        ),
        "diabetes": make_project(
            tmp_path_factory.mktemp("diabetes"), ["dataset=diabetes"], ["prepare", "split"]
        ),
    }


def tree_digest(project: Path) -> str:
    h = hashlib.sha256()
    for top in OUTPUTS:
        for path in sorted((project / top).rglob("*")):
            h.update(str(path.relative_to(project)).encode())
            if path.is_file():
                h.update(path.read_bytes())
    return h.hexdigest()


def running_runs(project: Path) -> list[str]:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'")
    return [r.info.run_id for r in runs]


def _csv(text: str) -> Callable[[Path], str]:
    def make(inputs: Path) -> str:
        path = inputs / "table.csv"
        path.write_text(text)
        return str(path)

    return make


def _frame(frame: pd.DataFrame) -> Callable[[Path], str]:
    def make(inputs: Path) -> str:
        path = inputs / "table.csv"
        frame.to_csv(path, index=False)
        return str(path)

    return make


def _idx(damage: str) -> Callable[[Path], str]:
    def make(inputs: Path) -> str:
        folder = write_idx_set(inputs / "idx", n_train=20, n_test=10)
        if damage == "truncate":
            images = folder / "train-images-idx3-ubyte.gz"
            raw = gzip.decompress(images.read_bytes())
            images.write_bytes(gzip.compress(raw[:-100]))
        elif damage == "labels":
            labels = np.full(20, 12, dtype=np.uint8)  # class 12 of a 10-class output layer
            (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
        return str(folder)

    return make


class Case(NamedTuple):
    id: str
    stage: str
    expected: str
    overrides: list[str] = []
    data_file: Callable[[Path], str] | None = None  # makes a file; its path goes to dataset.path
    project: str = "digits"


TABLE = "dataset=tabular"
CASES = [
    Case("unknown-data-set", "prepare", "dataset.name", ["dataset.name=cifar"]),
    Case("unknown-model", "train", "model.name", ["model.name=transformer"]),
    Case("unknown-optimizer", "train", "optimizer.name", ["optimizer.name=adamw2"]),
    Case("unknown-activation", "train", "model.activation", ["model.activation=swishy"]),
    Case("epochs-zero", "train", "training.epochs", ["training.epochs=0"]),
    Case("batch-size-negative", "train", "training.batch_size", ["training.batch_size=-8"]),
    Case("learning-rate-zero", "train", "optimizer.learning_rate", ["optimizer.learning_rate=0"]),
    Case("n-hidden-negative", "train", "model.n_hidden", ["model.n_hidden=-1"]),
    Case("n-neurons-zero", "train", "model.n_neurons", ["model.n_neurons=0"]),
    Case("test-fraction-above-one", "split", "split.test_size", ["split.test_size=1.5"]),
    Case("clip-not-positive", "split", "split.clip", ["split.clip=0"]),
    Case(
        "splits-leave-no-training-data",
        "split",
        "split.test_size",
        ["split.test_size=0.5", "split.valid_size=0.5"],
    ),
    Case(
        "cross-entropy-on-regression",
        "train",
        "training.loss",
        ["training.loss=sparse_categorical_crossentropy"],
        project="diabetes",
    ),
    Case(
        "missing-data-path",
        "prepare",
        "dataset.path",
        ["dataset=fashion_mnist", "dataset.path=/nonexistent/fashion"],
    ),
    Case(
        "csv-without-target",
        "prepare",
        "dataset.target",
        [TABLE, "dataset.target=label"],
        _frame(pd.DataFrame({"a": [1.0, 2.0], "b": [0, 1]})),
    ),
    Case(
        "non-numeric-features",
        "prepare",
        "not numeric",
        [TABLE, "dataset.target=y"],
        _frame(pd.DataFrame({"a": ["red", "blue"], "y": [0, 1]})),
    ),
    Case(
        "nan-in-features",
        "prepare",
        "NaN",
        [TABLE, "dataset.target=y"],
        _frame(pd.DataFrame({"a": [1.0, np.nan, 2.0], "y": [0, 1, 0]})),
    ),
    Case(
        "infinite-features",
        "prepare",
        "infinite",
        [TABLE, "dataset.target=y"],
        _frame(pd.DataFrame({"a": [1.0, np.inf, 2.0], "y": [0, 1, 0]})),
    ),
    Case("labels-out-of-range", "prepare", "class labels", ["dataset=fashion_mnist"], _idx("labels")),
    Case("empty-data-file", "prepare", "empty", [TABLE, "dataset.target=y"], _csv("")),
    Case("truncated-idx-file", "prepare", "truncated", ["dataset=fashion_mnist"], _idx("truncate")),
    Case(
        "wide-deep-indices-out-of-range",
        "train",
        "model.wide_features",
        ["model.name=wide_deep", "+model.wide_features=[0,1,42]", "+model.deep_features=[2,3]"],
        project="diabetes",
    ),
    Case("misspelled-key", "train", "training.epoch", ["+training.epoch=3"]),
    Case("wrong-type", "train", "training.epochs", ["training.epochs=many"]),
    Case("output-path-outside-project", "train", "paths.models", ["paths.models=/tmp/elsewhere"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_and_leaves_nothing_behind(projects, case, tmp_path):
    project = projects[case.project]
    overrides = list(case.overrides)
    if case.data_file is not None:
        overrides.append(f"dataset.path={case.data_file(tmp_path)}")
    before = tree_digest(project)
    good_params = (project / "params.yaml").read_bytes()
    try:
        try:
            write_params(
                project / "params.yaml", ["training.epochs=2", *overrides], config_dir=project / "conf"
            )
        except Exception:  # a value conf/ cannot even compose: hand-edit params.yaml instead
            key, _, value = overrides[-1].partition("=")
            text = good_params.decode().replace("epochs: 2", f"epochs: {value}")
            (project / "params.yaml").write_text(text)
        proc = run_stage(project, case.stage, check=False)
    finally:
        (project / "params.yaml").write_bytes(good_params)
    assert_one_line_failure(proc, case.stage, case.expected)
    assert tree_digest(project) == before
    assert running_runs(project) == []


def assert_one_line_failure(proc, stage: str, expected: str) -> None:
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"annlab {stage}: error: "), lines[0]
    assert expected in lines[0], lines[0]


def test_malformed_params_file(projects):
    project = projects["digits"]
    good = (project / "params.yaml").read_bytes()
    before = tree_digest(project)
    try:
        (project / "params.yaml").write_text("dataset: [unclosed\n")
        proc = run_stage(project, "prepare", check=False)
    finally:
        (project / "params.yaml").write_bytes(good)
    assert_one_line_failure(proc, "prepare", "params.yaml")
    assert tree_digest(project) == before


@pytest.mark.parametrize(
    ("stage", "file", "damage"),
    [
        ("evaluate", "test_outputs.npz", "corrupt"),
        ("evaluate", "test_outputs.npz", "missing"),
        ("predict", "model.keras", "corrupt"),
        ("predict", "model.keras", "missing"),
    ],
)
def test_corrupt_or_missing_model_files(projects, stage, file, damage, tmp_path):
    """The evaluate stage reads the model's test outputs; `annlab predict` the model itself."""
    project = projects["digits"]
    target = project / "models" / file
    saved = tmp_path / file
    shutil.copy2(target, saved)
    before = tree_digest(project)
    images = tmp_path / "new.npy"
    np.save(images, np.zeros((2, 8, 8), dtype=np.float32))
    try:
        if damage == "corrupt":
            target.write_bytes(b"PK\x03\x04 this is not what was written")
        else:
            target.unlink()
        if stage == "evaluate":
            proc = run_stage(project, "evaluate", check=False)
        else:
            command = ["annlab", "predict", str(images), "-o", str(project / "reports" / "new.csv")]
            proc = run(command, project, stage_env(project), check=False)
    finally:
        shutil.copy2(saved, target)
    assert_one_line_failure(proc, stage, file)
    assert tree_digest(project) == before  # nothing written, nothing half-written
    assert running_runs(project) == []


def test_unreachable_tracking_server_fails_fast(projects):
    project = projects["digits"]
    before = tree_digest(project)
    env = stage_env(project, MLFLOW_TRACKING_URI="http://127.0.0.1:9")  # nothing listens on 9
    start = time.monotonic()
    proc = run_stage(project, "train", env=env, check=False)
    elapsed = time.monotonic() - start
    assert_one_line_failure(proc, "train", "http://127.0.0.1:9")
    assert elapsed < 30, f"took {elapsed:.1f}s"
    assert tree_digest(project) == before


def test_hydra_app_bad_override_is_one_line(projects, tmp_path):
    project = projects["digits"]
    for args, expected in (
        (["dataset=cifar"], "dataset/cifar"),
        (["optimizer.learning_rate=0"], "optimizer.learning_rate"),
    ):
        proc = run(
            ["annlab-train", *args, f"hydra.run.dir={tmp_path / 'out'}"],
            project,
            stage_env(project),
            check=False,
        )
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 1 and len(lines) == 1 and expected in lines[0], proc.stderr
        assert not (tmp_path / "out").exists(), "no output folder for a run that never started"
