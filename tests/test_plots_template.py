"""The committed plots template: DVC is told to use it, and it carries the pinned Vega,
Vega-Lite and vega-embed files byte for byte, with no CDN script. (That `dvc plots show` then
renders offline in headless Chromium is checked in test_pipeline's end-to-end run.)"""

from __future__ import annotations

import configparser
import subprocess
import sys

from conftest import ROOT

BUILD = ROOT / "tools" / "build_plots_template.py"


def test_dvc_uses_the_offline_template():
    config = configparser.ConfigParser()
    config.read(ROOT / ".dvc" / "config")
    template = ROOT / ".dvc" / config["plots"]["html_template"]
    assert template == ROOT / ".dvc" / "plots" / "offline.html" and template.is_file()


def test_template_holds_the_pinned_libraries():
    check = subprocess.run(
        [sys.executable, str(BUILD), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    assert "vega 5.33.1, vega-lite 5.23.0, vega-embed 6.29.0 inlined" in check.stdout
    page = (ROOT / ".dvc" / "plots" / "offline.html").read_text()
    assert "<script src" not in page and "{plot_divs}" in page


def test_a_changed_library_is_caught(tmp_path):
    page = (ROOT / ".dvc" / "plots" / "offline.html").read_text()
    tampered = tmp_path / "offline.html"
    tampered.write_text(page.replace("zoomLog=", "zoomLog =", 1))
    check = subprocess.run(
        [sys.executable, str(BUILD), "--check", "--output", str(tampered)],
        capture_output=True,
        text=True,
    )
    assert check.returncode != 0 and "vega@5.33.1 differs from the pinned file" in check.stderr
