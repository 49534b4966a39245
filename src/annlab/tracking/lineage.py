"""Where a run's code and data came from: git commit, DVC hashes, Hydra overrides."""

from __future__ import annotations

import subprocess
from pathlib import Path

from annlab.tracking import tags


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_tags() -> dict[str, str]:
    """MLflow's own `mlflow.source.git.commit` tag, plus whether the tree had local changes."""
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return {}
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return {"mlflow.source.git.commit": commit, tags.GIT_DIRTY: str(dirty).lower()}


def dvc_lock_tags(lock_file: str | Path = "dvc.lock") -> dict[str, str]:
    """The hash DVC recorded for each stage output (`dvc.<stage>.<path>` -> md5)."""
    import yaml

    path = Path(lock_file)
    if not path.is_file():
        return {}
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: dvc.lock lists every code dep
    try:
        lock = yaml.load(path.read_text(), Loader=loader) or {}  # noqa: S506 (a safe loader)
    except yaml.YAMLError:
        return {}
    tags: dict[str, str] = {}
    for stage, entry in (lock.get("stages") or {}).items():
        for out in entry.get("outs") or []:
            if "md5" in out and out.get("path"):
                tags[f"dvc.{stage}.{out['path']}"] = out["md5"]
    return tags
