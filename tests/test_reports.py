"""Reports as a person sees them: the HTML report in headless Chromium, the figures in MLflow
through a real `annlab ui` server's REST API, and the Markdown report's content."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests

from annlab.stages.evaluate import evaluate_stage
from annlab.stages.prepare import prepare
from annlab.stages.report import report
from annlab.stages.split import split
from annlab.stages.train import train
from conftest import free_port, mode_of, tool_env, umask, wait_until_healthy

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def run_pipeline(cfg) -> None:
    for stage in (prepare, split, train, evaluate_stage, report):
        stage(cfg)


@pytest.fixture(scope="module")
def classification_report(tmp_path_factory) -> Path:
    """Two digits runs of one experiment (the second is reported and compared), written under
    umask 022 as a user's shell has it."""
    from annlab.config import compose_config
    from conftest import ROOT

    folder = tmp_path_factory.mktemp("report")
    old_cwd, old_uri = Path.cwd(), os.environ.get("MLFLOW_TRACKING_URI")
    os.chdir(folder)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
    try:
        with umask(0o022):
            for rate in ("0.002", "0.05"):
                run_pipeline(
                    compose_config(
                        ["training.epochs=3", f"optimizer.learning_rate={rate}"], config_dir=ROOT / "conf"
                    )
                )
    finally:
        os.chdir(old_cwd)
        if old_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old_uri
    return folder


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
    rows = re.findall(r"^\| `runs:/(\w+)`", text, flags=re.MULTILINE)
    assert len(rows) == 2, "both runs of the experiment are compared"
    for figure in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (classification_report / "reports" / figure).stat().st_size > 5000


def test_outputs_have_the_mode_a_plain_open_gives(classification_report):
    """Under umask 022 every output is readable by others (0644 / 0755), as `open()` makes it."""
    reports = classification_report / "reports"
    for path in (reports / "report.md", reports / "report.html", reports / "metrics.json"):
        assert mode_of(path) == 0o644, path
    assert mode_of(reports / "figures") == 0o755
    assert {mode_of(p) for p in (reports / "figures").iterdir()} == {0o644}
    assert mode_of(classification_report / "models" / "model.keras") == 0o644


def test_html_report_is_self_contained(classification_report):
    page = (classification_report / "reports" / "report.html").read_text()
    sources = re.findall(r"src='([^']*)'", page)
    assert len(sources) == 3 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in page and "https://" not in page


@pytest.mark.slow
def test_html_report_renders_in_headless_chromium(classification_report, tmp_path):
    assert CHROMIUM, "Debian's chromium package is required (installed by .ci/run)"
    page = (classification_report / "reports" / "report.html").read_text()
    probe = (
        "<script>window.addEventListener('load', () => {"
        "const ok = [...document.images].filter(i => i.complete && i.naturalWidth > 100);"
        "document.body.dataset.images = document.images.length;"
        "document.body.dataset.rendered = ok.length;"
        "document.body.dataset.metricRows = "
        "document.querySelectorAll('#metrics tr').length;});</script>"
    )
    probed = tmp_path / "report.html"
    probed.write_text(page.replace("</body>", probe + "</body>"))
    common = [
        CHROMIUM,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
    ]
    dom = subprocess.run(
        [*common, "--dump-dom", probed.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    images = int(re.search(r'data-images="(\d+)"', dom).group(1))
    rendered = int(re.search(r'data-rendered="(\d+)"', dom).group(1))
    metric_rows = int(re.search(r'data-metric-rows="(\d+)"', dom).group(1))
    assert images == 3 and rendered == 3, "every figure decoded, none broken"
    assert metric_rows >= 4, "the metrics table rendered"

    shot = tmp_path / "report.png"
    subprocess.run(
        [
            *common,
            f"--screenshot={shot}",
            "--window-size=1100,2400",
            (classification_report / "reports" / "report.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    from PIL import Image

    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.float32)
    assert pixels.shape == (2400, 1100)
    assert pixels.std() > 20, "the screenshot shows content, not a blank page"


@pytest.mark.slow
def test_annlab_ui_serves_the_run_with_its_figures(classification_report):
    port = free_port()
    store = f"sqlite:///{classification_report / 'mlflow.db'}"
    ui = subprocess.Popen(
        [sys.executable, "-m", "annlab.cli", "ui", "--port", str(port), "--backend-store-uri", store],
        cwd=classification_report,
        env=tool_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, ui, "the UI")
        api = f"{base}/api/2.0/mlflow"
        experiment = requests.get(
            f"{api}/experiments/get-by-name", params={"experiment_name": "digits_mlp"}, timeout=10
        ).json()
        runs = requests.post(
            f"{api}/runs/search",
            timeout=10,
            json={"experiment_ids": [experiment["experiment"]["experiment_id"]]},
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
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)


def test_regression_report_has_predicted_against_actual(compose, workdir):
    run_pipeline(
        compose(
            "dataset=diabetes",
            "training.epochs=3",
            "model.n_neurons=16",
            "optimizer=adam",
            "optimizer.learning_rate=0.01",
        )
    )
    text = (workdir / "reports" / "report.md").read_text()
    assert "## Predicted against actual, residuals" in text
    assert "Confusion matrix" not in text
    assert (workdir / "reports" / "figures" / "predicted_vs_actual.png").stat().st_size > 5000
    values = (workdir / "reports" / "evaluation" / "values.csv").read_text().splitlines()
    classes = (workdir / "reports" / "evaluation" / "classes.csv").read_text().splitlines()
    assert values[0] == "actual,predicted" and len(values) > 10 and classes == ["actual,predicted"]
