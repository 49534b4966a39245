"""Reports as a person sees them: the HTML report in headless Chromium, the figures in MLflow
through a real `annlab ui` server's REST API, and the Markdown report's content."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import requests

from annlab.stages.evaluate import evaluate_stage
from annlab.stages.prepare import prepare
from annlab.stages.report import report
from annlab.stages.split import split
from annlab.stages.train import train
from browser import dump_dom, screenshot
from conftest import (
    assert_stopped,
    free_port,
    mode_of,
    seed_store,
    stop_annlab_ui,
    tool_env,
    umask,
    wait_until_healthy,
)


def run_pipeline(cfg) -> None:
    for stage in (prepare, split, train, evaluate_stage, report):
        stage(cfg)


@pytest.fixture(scope="module")
def classification_report(tmp_path_factory, empty_store) -> Path:
    """Two digits runs of one experiment (the second is reported and compared), written under
    umask 022 as a user's shell has it."""
    from annlab.config import compose_config
    from conftest import ROOT

    folder = tmp_path_factory.mktemp("report")
    old_cwd, old_uri = Path.cwd(), os.environ.get("MLFLOW_TRACKING_URI")
    os.chdir(folder)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{seed_store(empty_store, folder / 'mlflow.db')}"
    try:
        with umask(0o022):
            for rate in ("0.002", "0.05"):
                overrides = ["training.epochs=3", "model.n_neurons=[64]", f"optimizer.learning_rate={rate}"]
                run_pipeline(compose_config(overrides, config_dir=ROOT / "conf"))
    finally:
        os.chdir(old_cwd)
        if old_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old_uri
    return folder


@pytest.mark.slow
def test_markdown_report_has_every_section(classification_report):
    text = (classification_report / "reports" / "report.md").read_text()
    for section in (
        "## Configuration",
        "## Test metrics",
        "## Learning curves",
        "## Confusion matrix",
        "## Test images and predictions",
        "## First test instances",
        "## Runs of `digits_mlp`",
        "## Model summary",
    ):
        assert section in text, section
    run_id = json.loads((classification_report / "models" / "run.json").read_text())["run_id"]
    assert f"`runs:/{run_id}` (this run)" in text
    rows = re.findall(r"^\| `runs:/(\w+)`[^|]*\| ([^|]*) \|", text, flags=re.MULTILINE)
    assert len(rows) == 2, "both runs of the experiment are compared"
    assert {settings for _, settings in rows} == {
        "optimizer.learning_rate=0.002",
        "optimizer.learning_rate=0.05",
    }, "each run says which config it used"
    for figure in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (classification_report / "reports" / figure).stat().st_size > 5000


def test_loss_panel_fits_losses_above_one_and_accuracy_stays_in_0_1():
    """Ten classes start near ln 10 = 2.3: the loss panel shows it all, accuracy keeps [0, 1]."""
    from annlab.reporting.figures import learning_curves_figure

    history = {
        "epoch": [0, 1, 2],
        "loss": [2.31, 1.4, 0.6],
        "val_loss": [2.2, float("nan"), 0.7],
        "accuracy": [0.1, 0.6, 0.8],
        "val_accuracy": [0.2, 0.5, 0.75],
    }
    loss_axes, accuracy_axes = learning_curves_figure(history, "multiclass").axes
    assert loss_axes.get_ylim()[0] == 0 and 2.31 < loss_axes.get_ylim()[1] < 2.5
    assert {line.get_label() for line in loss_axes.lines} == {"loss", "val_loss"}
    assert accuracy_axes.get_ylim() == (0, 1)
    (single,) = learning_curves_figure({"loss": [40.0, 30.0], "mae": [5.0, 4.0]}, "regression").axes
    assert single.get_ylim()[1] >= 40


def test_run_settings_say_what_differs_between_runs():
    from annlab.reporting.compare import run_settings

    base = {"model.n_hidden": "2", "tracking.run_name": "a", "paths.models": "models"}
    rows = [
        {"params": {**base, "optimizer.learning_rate": "0.01"}},
        {"params": {**base, "optimizer.learning_rate": "0.05", "tracking.run_name": "b"}},
        {"params": {**base, "optimizer.learning_rate": "0.05", "model.n_hidden": "3"}},
    ]
    assert run_settings(rows) == [
        "model.n_hidden=2, optimizer.learning_rate=0.01",
        "model.n_hidden=2, optimizer.learning_rate=0.05",
        "model.n_hidden=3, optimizer.learning_rate=0.05",
    ]
    alone = [{"params": base, "overrides": "model.n_hidden=2"}]
    assert run_settings(alone) == ["model.n_hidden=2"]
    assert run_settings([{"params": base, "overrides": "(none)"}]) == ["defaults"]


@pytest.mark.slow
def test_outputs_have_the_mode_a_plain_open_gives(classification_report):
    """Under umask 022 every output is readable by others (0644 / 0755), as `open()` makes it."""
    reports = classification_report / "reports"
    for path in (reports / "report.md", reports / "report.html", reports / "metrics.json"):
        assert mode_of(path) == 0o644, path
    assert mode_of(reports / "figures") == 0o755
    assert {mode_of(p) for p in (reports / "figures").iterdir()} == {0o644}
    assert mode_of(classification_report / "models" / "model.keras") == 0o644


@pytest.mark.slow
def test_html_report_is_self_contained(classification_report):
    page = (classification_report / "reports" / "report.html").read_text()
    sources = re.findall(r"src='([^']*)'", page)
    assert len(sources) == 3 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in page and "https://" not in page


@pytest.mark.slow
def test_html_report_renders_in_headless_chromium(classification_report, tmp_path):
    page = (classification_report / "reports" / "report.html").read_text()
    probe = (
        "<script>window.addEventListener('load', () => {"
        "const ok = [...document.images].filter(i => i.complete && i.naturalWidth > 100);"
        "document.body.dataset.images = document.images.length;"
        "document.body.dataset.rendered = ok.length;"
        "document.body.dataset.metricRows = "
        "document.querySelectorAll('#metrics tr').length;"
        "document.body.dataset.runSettings = [...document.querySelectorAll('#runs tr')]"
        ".slice(1).map(r => r.cells[1].textContent).sort().join(' / ');});</script>"
    )
    probed = tmp_path / "report.html"
    probed.write_text(page.replace("</body>", probe + "</body>"))
    dom = dump_dom(probed.as_uri(), tmp_path / "profile")
    images = int(re.search(r'data-images="(\d+)"', dom).group(1))
    rendered = int(re.search(r'data-rendered="(\d+)"', dom).group(1))
    metric_rows = int(re.search(r'data-metric-rows="(\d+)"', dom).group(1))
    assert images == 3 and rendered == 3, "every figure decoded, none broken"
    assert metric_rows >= 4, "the metrics table rendered"
    settings = re.search(r'data-run-settings="([^"]*)"', dom).group(1)
    assert settings == "optimizer.learning_rate=0.002 / optimizer.learning_rate=0.05"

    shot = screenshot(
        (classification_report / "reports" / "report.html").as_uri(),
        tmp_path / "profile",
        tmp_path / "report.png",
        (1100, 2400),
    )
    from PIL import Image

    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.float32)
    assert pixels.shape == (2400, 1100)
    assert pixels.std() > 20, "the screenshot shows content, not a blank page"


@pytest.mark.slow
def test_annlab_ui_opens_the_runs_and_stops_on_sigterm(classification_report, tmp_path):
    """A real `annlab ui` on the report's sqlite store: the REST API has both runs with their
    figures; the experiment is marked as model training; the link `annlab ui` prints opens the
    runs table in headless Chromium; SIGTERM to `annlab ui` alone stops every server process,
    frees the port and ends with one line."""
    port = free_port()
    store = f"sqlite:///{classification_report / 'mlflow.db'}"
    output = tmp_path / "ui.out"
    with open(output, "w") as out:
        ui = subprocess.Popen(
            [sys.executable, "-m", "annlab.cli", "ui", "--port", str(port), "--backend-store-uri", store],
            cwd=classification_report,
            env=tool_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, ui, "the UI")
        api = f"{base}/api/2.0/mlflow"
        experiment = requests.get(
            f"{api}/experiments/get-by-name", params={"experiment_name": "digits_mlp"}, timeout=10
        ).json()["experiment"]
        tags = {t["key"]: t["value"] for t in experiment.get("tags", [])}
        assert tags["mlflow.experimentKind"] == "custom_model_development"
        runs = requests.post(
            f"{api}/runs/search", timeout=10, json={"experiment_ids": [experiment["experiment_id"]]}
        ).json()["runs"]
        assert len(runs) == 2
        run_id = json.loads((classification_report / "models" / "run.json").read_text())["run_id"]
        (run,) = [r for r in runs if r["info"]["run_id"] == run_id]
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert params["optimizer.learning_rate"] == "0.05"
        assert "test_accuracy" in metrics and "val_loss" in metrics
        listed = requests.get(
            f"{api}/artifacts/list", timeout=10, params={"run_id": run_id, "path": "figures"}
        ).json()
        names = {Path(f["path"]).name for f in listed["files"]}
        assert {"learning_curves.png", "confusion_matrix.png", "sample_predictions.png"} <= names

        deadline = time.monotonic() + 30
        while "digits_mlp: " not in output.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        link = re.search(r"digits_mlp: (\S+)", output.read_text()).group(1)
        assert link.startswith(f"{base}/#/experiments/{experiment['experiment_id']}/")
        dom = dump_dom(link, tmp_path / "profile", budget_ms=20000)
        for r in runs:
            assert r["info"]["run_name"] in dom, "the link opens the runs table"

        server = psutil.Process(ui.pid).children(recursive=True)
        assert server, "annlab ui started the MLflow server"
        ui.send_signal(signal.SIGTERM)  # to annlab ui only, as `kill PID` does
        assert ui.wait(timeout=60) == 0
    finally:
        stop_annlab_ui(ui)
    assert_stopped(server, port)
    text = output.read_text()
    assert text.splitlines()[-1] == f"ui: stopped; port {port} is free"
    assert "Traceback" not in text


@pytest.mark.slow
def test_regression_report_has_predicted_against_actual(compose, workdir):
    run_pipeline(
        compose(
            "dataset=diabetes",
            "training.epochs=3",
            "model.n_neurons=16",
            "optimizer=adam",
            "optimizer.learning_rate=0.01",
            "objective.metric=val_loss",
            "objective.direction=minimize",
        )
    )
    text = (workdir / "reports" / "report.md").read_text()
    assert "## Predicted against actual, residuals" in text
    assert "Confusion matrix" not in text
    assert (workdir / "reports" / "figures" / "predicted_vs_actual.png").stat().st_size > 5000
    values = (workdir / "reports" / "evaluation" / "values.csv").read_text().splitlines()
    classes = (workdir / "reports" / "evaluation" / "classes.csv").read_text().splitlines()
    assert values[0] == "actual,predicted" and len(values) > 10 and classes == ["actual,predicted"]
