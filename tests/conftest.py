"""Shared fixtures: composed configs, small prepared data, a temp MLflow store, and a copy of
the project in a temp git repo for end-to-end runs of the real DVC / Hydra / MLflow commands."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = [
    "conf",
    "src",
    "dvc.yaml",
    "params.yaml",
    ".dvc/config",
    ".dvc/plots/offline.html",
    ".dvcignore",
    ".gitignore",
    "pyproject.toml",
    "data/README.md",
]


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory, worker_id) -> Path:
    """An empty MLflow sqlite store whose schema MLflow made once per test session (the first
    pytest-xdist worker makes it, the others wait for it): each test gets a copy, the same as
    a new store, without MLflow's ~2 s of schema migrations every time."""
    import logging

    from mlflow import MlflowClient

    from annlab.locks import file_lock

    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    # the session's temp root, shared by its workers (without xdist: this session's own)
    root = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    path = root / "empty-store" / "empty.db"
    with file_lock(path.with_suffix(".lock")):
        if not path.is_file():
            making = path.with_suffix(".making")
            making.unlink(missing_ok=True)
            MlflowClient(f"sqlite:///{making}").search_experiments()
            making.rename(path)
    return path


def seed_store(empty_store: Path, path: Path) -> Path:
    """A fresh copy of the empty store at `path` (e.g. a project's mlflow.db)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(empty_store, path)
    return path


@pytest.fixture(autouse=True)
def _isolated_tracking(tmp_path_factory, monkeypatch, empty_store):
    """Every test gets its own sqlite MLflow store (beside its tmp_path, not in it); nothing
    touches the project's mlflow.db."""
    store = seed_store(empty_store, tmp_path_factory.mktemp("store") / "mlruns.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    import mlflow

    # a URI set in this process by an earlier test (mlflow.set_tracking_uri) outranks the env
    mlflow.set_tracking_uri(f"sqlite:///{store}")
    yield

    while mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture
def compose():
    """Compose the project's conf/ with overrides into a validated Config."""
    from annlab.config import compose_config

    def _compose(*overrides: str):
        return compose_config(list(overrides), config_dir=ROOT / "conf")

    return _compose


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in an empty folder: relative outputs (data/, models/, .annlab/) land there."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def tool_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for subprocesses: this interpreter's bin first, so `python`, `dvc` and
    `annlab-train` are the ones under test."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("GIT_AUTHOR_NAME", "annlab tests")
    env.setdefault("GIT_AUTHOR_EMAIL", "tests@annlab.invalid")
    env.setdefault("GIT_COMMITTER_NAME", "annlab tests")
    env.setdefault("GIT_COMMITTER_EMAIL", "tests@annlab.invalid")
    env["DVC_NO_ANALYTICS"] = "1"
    env.update(extra or {})
    return env


def run(
    cmd: list[str], cwd: Path, env: dict[str, str] | None = None, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env or tool_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n"
            f"{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
        )
    return proc


@pytest.fixture
def project(tmp_path, empty_store) -> Path:
    """A copy of the project in a fresh git repo (what a user has after `git clone`), its
    mlflow.db an empty store (a copy of one MLflow made; the end-to-end test starts with none)."""
    dest = copy_project(tmp_path / "project")
    seed_store(empty_store, dest / "mlflow.db")
    return dest


@pytest.fixture
def cloned_project(tmp_path) -> Path:
    """A copy of the project in a fresh git repo and nothing else: the first run makes the store."""
    return copy_project(tmp_path / "project")


def copy_project(dest: Path) -> Path:
    """The project's files copied into `dest`, committed in a fresh git repo."""
    dest.mkdir(parents=True)
    for name in PROJECT_FILES:
        src = ROOT / name
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        else:
            shutil.copy2(src, target)
    (dest / ".dvc" / ".gitignore").write_text("/config.local\n/tmp\n/cache\n")
    env = tool_env()
    run(["git", "init", "-q", "-b", "main"], dest, env)
    run(["git", "add", "-A"], dest, env)
    run(["git", "commit", "-qm", "project"], dest, env)
    return dest


def free_port() -> int:
    """A free TCP port on loopback, for servers the tests start."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(url: str, process: subprocess.Popen, what: str, seconds: float = 120) -> None:
    """Poll an MLflow server's /health until it answers; fail if it exits or never does."""
    import time

    import requests

    deadline = time.monotonic() + seconds
    while True:
        try:
            if requests.get(f"{url}/health", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        assert process.poll() is None and time.monotonic() < deadline, f"{what} did not start"
        time.sleep(0.5)


def project_env(project: Path, **extra: str) -> dict[str, str]:
    """Subprocess env for a project copy: MLflow's default store in the project root."""
    env = tool_env(extra)
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    """Run a block under a given umask (process-wide), restoring the previous one."""
    previous = os.umask(value)
    try:
        yield
    finally:
        os.umask(previous)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def stop_annlab_ui(ui: subprocess.Popen) -> None:
    """After a failed check: stop a still-running `annlab ui` as a user would (SIGTERM), so it
    stops its servers, which run in sessions of their own and would outlive a SIGKILL of its
    group; SIGKILL only if it does not exit."""
    if ui.poll() is None:
        ui.send_signal(signal.SIGTERM)
        try:
            ui.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):  # it may exit meanwhile
                os.killpg(ui.pid, signal.SIGKILL)
    ui.wait(timeout=30)


def assert_stopped(processes, port: int) -> None:
    """Every one of `processes` (psutil) has exited (zombies hold no port: they count as
    gone) and the loopback `port` can be bound again."""
    import socket

    import psutil

    alive = []
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{process.pid} {' '.join(process.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            continue
    assert not alive, f"left running: {alive}"
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server restarting would
        sock.bind(("127.0.0.1", port))
        sock.listen()
