"""Shared helpers for the benchmarks: a project copy in a temp git repo, a KERAS_HOME over the
real Fashion-MNIST files, timing and peak-memory of child processes."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FASHION_DIR = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
PROJECT_FILES = [
    "conf",
    "src",
    "dvc.yaml",
    "params.yaml",
    ".dvc/config",
    ".dvcignore",
    ".gitignore",
    "pyproject.toml",
]


def env(**extra: str) -> dict[str, str]:
    out = dict(os.environ)
    out["PATH"] = f"{BIN}{os.pathsep}{out.get('PATH', '')}"
    out.update(extra)
    return out


def require_fashion() -> Path:
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file():
        sys.exit(
            f"Fashion-MNIST IDX files not found in {FASHION_DIR}: "
            "`apt-get install dataset-fashion-mnist`, or set FASHION_MNIST_DIR."
        )
    return FASHION_DIR


def keras_home(workdir: Path) -> Path:
    """$KERAS_HOME whose datasets/fashion-mnist holds the real files: Keras' loader reads them
    and downloads nothing."""
    home = workdir / "keras_home"
    target = home / "datasets" / "fashion-mnist"
    target.mkdir(parents=True, exist_ok=True)
    for source in require_fashion().glob("*.gz"):
        link = target / source.name
        if not link.exists():
            link.symlink_to(source)
    return home


def project_copy(workdir: Path, name: str = "project") -> Path:
    dest = workdir / name
    for item in PROJECT_FILES:
        src, target = ROOT / item, dest / item
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, target)
    run(["git", "init", "-q"], dest)
    run(["git", "add", "-A"], dest)
    run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@annlab.invalid", "commit", "-qm", "bench"],
        dest,
    )
    return dest


def run(cmd: list[str], cwd: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env(**(extra_env or {})), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


STATS = "annlab-bench-stats: "


def timed(
    cmd: list[str], cwd: Path, extra_env: dict[str, str] | None = None
) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall seconds and peak RSS (MB) of the largest process `cmd` starts."""
    wrapper = (
        "import resource, subprocess, sys, json, time;"
        "t = time.perf_counter(); p = subprocess.run(sys.argv[1:]);"
        "w = time.perf_counter() - t;"
        f"print({STATS!r} + json.dumps({{'rc': p.returncode, 'wall': w, 'rss': "
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}), "
        "file=sys.stderr)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd],
        cwd=cwd,
        env=env(**(extra_env or {})),
        capture_output=True,
        text=True,
    )
    # the last stats line: a process the command left behind may write after it
    stats_line = [x for x in proc.stderr.splitlines() if x.startswith(STATS)][-1]
    stats = json.loads(stats_line[len(STATS) :])
    if stats["rc"] != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return stats["wall"], stats["rss"], proc


def median(values: list[float]) -> float:
    return statistics.median(values)


def temp_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="annlab-bench-"))


def line(name: str, value: str, target: str = "", ok: bool | None = None) -> str:
    verdict = "" if ok is None else ("  PASS" if ok else "  MISS")
    return f"{name:<58} {value:<28} {target}{verdict}"


def elapsed(start: float) -> float:
    return time.perf_counter() - start
