"""Sharing through a DVC remote: push the pipeline's outputs to a local-folder remote, lose
the cache and every output, pull them back, and find the pipeline up to date."""

from __future__ import annotations

import re
import shutil

import pytest

from conftest import project_env, run

CACHED_OUTPUTS = ["data/raw", "data/processed", "models", "reports/evaluation", "reports/figures"]


@pytest.mark.slow
def test_push_remove_pull_and_nothing_to_rerun(project, tmp_path):
    env = project_env(project)
    run(["dvc", "exp", "run", "-S", "training.epochs=2"], project, env)
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-qm", "trained"], project, env)  # dvc.lock, metrics, report

    remote = tmp_path / "remote"
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
    for path in [
        "data/raw/arrays.npz",
        "data/processed/scaler.json",
        "models/model.keras",
        "models/meta.json",
        "models/run.json",
        "reports/evaluation/predictions.csv",
        "reports/figures/learning_curves.png",
    ]:
        assert (project / path).is_file(), path
    status = run(["dvc", "status"], project, env)
    assert "up to date" in status.stdout, status.stdout
    again = run(["dvc", "repro"], project, env)
    assert re.findall(r"Running stage '(\w+)'", again.stdout) == [], again.stdout
