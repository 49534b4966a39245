"""`annlab server` for a team: a real PostgreSQL cluster (initdb, as the non-root OS user
`annlab-pg` when the tests run as root) under a real MLflow server on 127.0.0.1, started once
for the module, and real trainings, sweeps, `dvc repro`, promote / predict / compare against it.

What must hold: the server prints `tracking.uri=...` and keeps its password private; 8
concurrent trainings and a joblib sweep lose no run and leave none RUNNING; SIGTERM ends a
training KILLED; SIGTERM stops server and database cleanly and a restart keeps every run and
registered model; a wrong password or a dead database fails in one line before any training;
a sweep on a Ray head on 127.0.0.1 writes its runs to the server (the suite's one Ray head).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from annlab.config.params import write_params
from annlab.tracking.server.postgres import FALLBACK_ROOT, OS_USER, Cluster, find_bindir
from conftest import PROJECT_FILES, ROOT, free_port, run, tool_env

TINY = ["dataset.limit=300", "training.epochs=2", "model.n_neurons=[8]"]
ONE_THREAD = ["training.intra_op_threads=1", "training.inter_op_threads=1"]


# -- the server, once per module ----------------------------------------------------------------


class TeamServer:
    """`annlab server` in a project folder: start, stop with a signal, start again."""

    def __init__(self, project: Path) -> None:
        self.project = project
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.lines: list[str] = []
        self.first_lines: list[str] = []

    def start(self, seconds: float = 180) -> list[str]:
        """Start and wait for the `tracking.uri=` line; the lines printed up to it."""
        self.lines = []
        self.process = subprocess.Popen(
            ["annlab", "server", "--port", str(self.port)],
            cwd=self.project,
            env=client_env(None),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        reader.start()
        deadline = time.monotonic() + seconds
        while not any(line.startswith("tracking.uri=") for line in self.lines):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(
                    f"annlab server did not start: {self.lines} {self.process.stderr.read()}"
                )
            time.sleep(0.2)
        return list(self.lines)

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str, str]:
        """Signal it; its exit code, what it printed, and its stderr."""
        assert self.process is not None
        self.process.send_signal(signum)
        try:
            code = self.process.wait(timeout=90)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        err = self.process.stderr.read()
        time.sleep(0.2)  # the reader thread takes the last line
        return code, "\n".join(self.lines), err

    @property
    def cluster(self) -> Cluster:
        return Cluster(self.project / ".annlab" / "postgres")

    def db_port(self) -> int:
        text = self.cluster.service_file.read_text()
        return int(next(line for line in text.splitlines() if line.startswith("port=")).split("=")[1])


def client_env(uri: str | None, **extra: str) -> dict[str, str]:
    env = tool_env(extra)
    env.pop("MLFLOW_TRACKING_URI", None)
    if uri is not None:
        env["MLFLOW_TRACKING_URI"] = uri
    return env


def make_project() -> Path:
    """A project copy in a fresh git repo, in a folder the cluster's OS user can enter (pytest's
    own temp root is closed to other users), with tiny training settings in params.yaml."""
    dest = Path(tempfile.mkdtemp(prefix="annlab-team-", dir="/tmp"))
    dest.chmod(0o755)
    for name in PROJECT_FILES:
        src, target = ROOT / name, dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        else:
            shutil.copy2(src, target)
    (dest / ".dvc" / ".gitignore").write_text("/config.local\n/tmp\n/cache\n")
    write_params(dest / "params.yaml", TINY, config_dir=dest / "conf")
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "p"]):
        run(cmd, dest)
    return dest


@pytest.fixture(scope="module")
def team():
    project = make_project()
    server = TeamServer(project)
    try:
        server.first_lines = server.start()
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.stop()
        server.cluster.stop()  # in case a test left it running without the server
        shutil.rmtree(project, ignore_errors=True)


def client(team: TeamServer) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=team.uri, registry_uri=team.uri)


def runs_of(team: TeamServer, experiment: str | None = None) -> list:
    c = client(team)
    names = [experiment] if experiment else [e.name for e in c.search_experiments()]
    ids = [c.get_experiment_by_name(n).experiment_id for n in names]
    return c.search_runs(ids, max_results=1000)


def assert_one_line_failure(proc: subprocess.CompletedProcess, command: str, expected: str) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"{command}: error: ") and expected in lines[0], lines[0]


def train(team: TeamServer, *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(["annlab-train", *overrides], team.project, client_env(team.uri), check=check)


# -- the tests -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_server_on_a_new_cluster_prints_the_tracking_uri_and_keeps_the_password_private(team):
    lines = team.first_lines
    assert f"tracking.uri={team.uri}" in lines
    assert any("new PostgreSQL cluster in .annlab/postgres" in line for line in lines), lines
    cluster = team.cluster
    for path in (cluster.pgpass, cluster.service_file):
        assert path.stat().st_mode & 0o777 == 0o600, path
    if os.geteuid() == 0:  # PostgreSQL refuses root: the cluster belongs to the system user
        assert cluster.data.stat().st_uid != 0
        assert subprocess.run(["ps", "-o", "user=", "-C", "postgres"], capture_output=True, text=True).stdout
    password = cluster.password()
    assert len(password) >= 24
    logs = [cluster.log, team.project / ".annlab" / "mlflow-server.log"]
    for text in ["\n".join(lines), *(p.read_text(errors="replace") for p in logs)]:
        assert password not in text
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert password not in cmdline.read_bytes().decode(errors="replace"), "password in `ps`"
        except OSError:
            continue

    import psycopg

    login = {"host": "127.0.0.1", "port": team.db_port(), "user": "mlflow", "dbname": "mlflow"}
    with psycopg.connect(password=password, **login) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("SHOW unix_socket_directories").fetchone() == ("",)
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables").fetchall()}
        assert {"runs", "metrics", "registered_models"} <= tables  # MLflow's schema is here


@pytest.mark.slow
def test_eight_concurrent_trainings_lose_no_run(team):
    """(A sweep on the server, parent and children: the Ray test below.)"""
    env = client_env(team.uri)
    quick = [*TINY, *ONE_THREAD, "tracking.log_model=false"]
    jobs = [
        subprocess.Popen(
            [
                "annlab-train",
                *quick,
                "experiment_name=concurrent",
                # eight configurations of one data set (prepared once, by the first job)
                f"optimizer.learning_rate=0.0{i + 1}",
                f"tracking.run_name=job{i}",
                f"hydra.run.dir=outputs/job{i}",
            ],
            cwd=team.project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    for job in jobs:
        _, err = job.communicate(timeout=600)
        assert job.returncode == 0, err[-3000:]

    c = client(team)
    runs = runs_of(team, "concurrent")
    assert sorted(r.info.run_name for r in runs) == [f"job{i}" for i in range(8)]
    for r in runs:
        assert r.info.status == "FINISHED"
        assert {"test_accuracy", "val_loss", "train_seconds"} <= set(r.data.metrics)
        assert len(c.get_metric_history(r.info.run_id, "val_loss")) == 2
    # artifacts went through the server into its folder
    assert "history.csv" in {a.path for a in c.list_artifacts(runs[0].info.run_id)}
    stored = team.project / ".annlab" / "artifacts"
    assert list(stored.rglob(f"{runs[0].info.run_id}/artifacts/history.csv"))

    out = run(["annlab", "compare", "--experiment", "concurrent"], team.project, env)
    assert out.stdout.startswith("compare: 8 runs of experiment 'concurrent'"), out.stdout
    assert (team.project / "reports" / "comparison" / "concurrent" / "comparison.csv").is_file()


@pytest.mark.slow
def test_sigterm_ends_a_training_on_the_server_killed(team):
    proc = subprocess.Popen(
        ["annlab-train", "dataset.limit=300", "training.epochs=5000", "experiment_name=interrupted"],
        cwd=team.project,
        env=client_env(team.uri),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    c = client(team)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        exp = c.get_experiment_by_name("interrupted")
        live = c.search_runs([exp.experiment_id]) if exp else []
        if live and live[0].data.metrics.get("val_loss") is not None:
            break  # the run exists on the server and has epochs logged
        time.sleep(0.3)
    assert proc.poll() is None, "training ended before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("annlab-train: interrupted; the MLflow run is marked KILLED"), err[-2000:]
    assert "Traceback" not in err
    (killed,) = runs_of(team, "interrupted")
    assert killed.info.status == "KILLED"
    shutil.rmtree(team.project / ".annlab" / "state", ignore_errors=True)


@pytest.mark.slow
def test_pipeline_registry_and_restart_keep_every_run(team, tmp_path):
    """`dvc repro` (report included), `annlab compare` and `promote` against the server; a
    training while its database is down fails in one line before training; a pg_dump backup;
    SIGTERM stops server and database; after a restart every run and the registered model are
    there, and `annlab predict` from `models:/digits_mlp@champion` gives the local model's answers."""
    project, env = team.project, client_env(team.uri)
    run(["dvc", "repro"], project, env)
    (repro,) = runs_of(team, "digits_mlp")
    assert repro.info.status == "FINISHED" and "test_accuracy" in repro.data.metrics
    assert repro.info.run_id in (project / "reports" / "report.md").read_text()
    out = run(["annlab", "promote", "--experiment", "digits_mlp"], project, env)
    assert "models:/digits_mlp@champion" in out.stdout

    # the README's backup command, with the generated credentials
    backup = tmp_path / "mlflow.dump"
    pg_env = dict(env, PGSERVICEFILE=str(team.cluster.service_file))
    run([str(find_bindir() / "pg_dump"), "-d", "service=annlab", "-Fc", "-f", str(backup)], project, pg_env)
    assert backup.stat().st_size > 10_000

    # the database dies under a running server: a training fails in one line, before training
    before = {r.info.run_id: r.info.status for r in runs_of(team)}
    team.cluster.stop()
    down = train(team, *TINY, "experiment_name=while_down", check=False)
    assert_one_line_failure(down, "annlab-train", "cannot read its store")
    assert "Epoch" not in down.stdout + down.stderr

    restart(team)
    assert {r.info.run_id: r.info.status for r in runs_of(team)} == before
    assert "RUNNING" not in before.values()
    c = client(team)
    assert c.get_model_version_by_alias("digits_mlp", "champion").run_id == repro.info.run_id
    assert "while_down" not in {e.name for e in c.search_experiments()}

    # the champion, loaded through the restarted server, answers as the evaluate stage did
    with np.load(project / "data" / "processed" / "test.npz", allow_pickle=False) as split:
        np.save(tmp_path / "test.npy", split["X"])
    out = run(
        ["annlab", "predict", str(tmp_path / "test.npy"), "-m", "models:/digits_mlp@champion"]
        + ["-o", str(tmp_path / "registry.csv")],
        project,
        env,
    )
    assert "models:/digits_mlp@champion" in out.stdout
    registry = pd.read_csv(tmp_path / "registry.csv")
    evaluated = pd.read_csv(project / "reports" / "evaluation" / "predictions.csv")
    assert registry["predicted"].tolist() == evaluated["predicted"].tolist()


def restart(team: TeamServer) -> None:
    """SIGTERM stops the server quietly, the port and the database freed; then start it again."""
    code, printed, err = team.stop(signal.SIGTERM)
    assert code == 0, err
    assert err.strip() == "", err  # quiet: no traceback
    assert printed.splitlines()[-1].startswith("server: stopped")
    assert not (team.cluster.data / "postmaster.pid").exists(), "PostgreSQL still runs"
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", team.port))  # the port is free again
    lines = team.start()
    assert any(line.startswith("annlab server: database: PostgreSQL cluster") for line in lines), lines


@pytest.mark.slow
def test_wrong_password_unreachable_database_or_second_server_fail_in_one_line(team):
    project, port = team.project, team.db_port()
    wrong = f"postgresql://mlflow:not-the-password@127.0.0.1:{port}/mlflow"
    nobody = f"postgresql://mlflow:x@127.0.0.1:{free_port()}/mlflow"
    started = time.monotonic()
    server_cmd = ["annlab", "server", "--port", str(free_port())]
    by_env = run(server_cmd, project, client_env(None, MLFLOW_BACKEND_STORE_URI=wrong), check=False)
    assert_one_line_failure(by_env, "annlab server", 'password authentication failed for user "mlflow"')
    assert "not-the-password" not in by_env.stderr
    by_flag = run([*server_cmd, "--backend-store-uri", nobody], project, client_env(None), check=False)
    assert_one_line_failure(by_flag, "annlab server", "Connection refused")
    assert "tracking.uri=" not in by_env.stdout + by_flag.stdout
    # a second server on the running cluster would stop the database under the first
    second = run(server_cmd, project, client_env(None), check=False)
    assert_one_line_failure(second, "annlab server", "Another `annlab server` runs on the cluster")
    # a training pointed straight at the database fails the same way, before training
    direct = train(team, *TINY, f"tracking.uri={wrong}", check=False)
    assert_one_line_failure(direct, "annlab-train", "password authentication failed")
    assert "Epoch" not in direct.stdout + direct.stderr
    assert time.monotonic() - started < 60


class RayHead:
    """`ray start --head --block` on 127.0.0.1 in its own session: terminating it stops exactly
    this head. Ready once `ray status` lists an active node: it exits 0 with "No cluster
    status" before the node has registered, and a driver that connects then fails after 60 s."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.ray = str(Path(sys.executable).parent / "ray")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp_dir = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: socket paths are limited
        self.log = open(self.temp_dir / "head.log", "w")  # noqa: SIM115 (closed in stop)
        self.cwd, self.env = cwd, env
        self.process = subprocess.Popen(
            [self.ray, "start", "--head", "--block", "--node-ip-address=127.0.0.1"]
            + [f"--port={self.port}", "--num-cpus=2", "--object-store-memory=100000000"]
            + ["--include-dashboard=false", f"--dashboard-port={free_port()}"]
            + [f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}"]
            + [f"--temp-dir={self.temp_dir}", "--disable-usage-stats"],
            cwd=cwd,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_for_a_node(self, seconds: float = 180) -> None:
        deadline = time.monotonic() + seconds
        status = [self.ray, "status", f"--address={self.address}"]
        while True:
            out = run(status, self.cwd, self.env, check=False, timeout=60)
            if out.returncode == 0 and re.search(r"^Active:\n\s*1 node_", out.stdout, re.MULTILINE):
                return
            assert self.process.poll() is None, self.logs()
            assert time.monotonic() < deadline, f"no Ray node in {seconds} s\n{out.stdout}{self.logs()}"
            time.sleep(2)  # each `ray status` imports Ray, ~1 s of CPU

    def logs(self) -> str:
        """The head's own log and its raylet's, for a failure message."""
        parts = [self.temp_dir / "head.log", *self.temp_dir.glob("session_*/logs/raylet.out")]
        return "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-3000:]}" for p in parts if p.is_file())

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@pytest.mark.slow
def test_ray_sweep_writes_to_the_team_server_and_reports_its_failed_job(team):
    """A Ray head on 127.0.0.1 runs a 3-job sweep whose jobs learn the server from the config
    (`tracking.uri=...`), as workers on other machines would; the job with a bad setting fails
    with its reason while the others finish, and the sweep exits 1 with a FAILED parent."""
    import hydra_plugins.hydra_ray_launcher.ray_launcher  # noqa: F401  (the `.[ray]` extra; never skipped)

    env = client_env(None, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0")
    head = RayHead(team.project, env)
    try:
        head.wait_for_a_node()
        out = run(
            ["annlab-train", "-m", "hydra/launcher=ray", f"+hydra.launcher.ray.init.address={head.address}"]
            + ["+hydra.launcher.ray.init.object_store_memory=null", f"tracking.uri={team.uri}"]
            + ["experiment_name=ray_sweep", "model.n_hidden=1,2,-1", *TINY, *ONE_THREAD],
            team.project,
            env,
            check=False,
        )
        text = out.stdout + out.stderr
        assert "Ray Launcher is launching 3 jobs" in text, text[-4000:] + head.logs()
        assert out.returncode == 1, text[-4000:]
        assert "annlab sweep: 3 jobs: 2 finished, 1 failed, 0 pruned" in text, text[-4000:]
        assert text.count("failed: Expected `model.n_hidden` >= 0.") == 1, text[-4000:]
        assert "1 of 3 jobs of the sweep failed" in out.stderr
    finally:
        head.stop()
    runs = runs_of(team, "ray_sweep")
    parents = [r for r in runs if r.data.tags.get("annlab.sweep.role") == "parent"]
    children = [r for r in runs if r not in parents]
    assert len(parents) == 1 and parents[0].info.status == "FAILED"
    assert parents[0].data.metrics["sweep_jobs_failed"] == 1
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert sorted(r.data.params["model.n_hidden"] for r in children) == ["1", "2"]
    assert {r.info.status for r in children} == {"FINISHED"}
    assert all("test_accuracy" in r.data.metrics for r in children)


def test_cluster_where_its_os_user_cannot_enter_the_project(tmp_path):
    """As root, PostgreSQL runs as `annlab-pg`; a project under a closed folder (/root, a 0700
    temp dir) gets its data under /var/lib/annlab-pg, linked from .annlab/postgres/data."""
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    cluster = Cluster(closed / "project" / ".annlab" / "postgres")
    cluster.create()
    try:
        assert (cluster.data / "PG_VERSION").is_file()
        if os.geteuid() == 0:
            assert cluster.data.is_symlink()
            assert cluster.data.resolve().is_relative_to(FALLBACK_ROOT)
            assert cluster.data.resolve().stat().st_uid != 0
            owner = subprocess.run(
                ["stat", "-c", "%U", str(cluster.data.resolve())], capture_output=True, text=True
            )
            assert owner.stdout.strip() == OS_USER
        else:
            assert not cluster.data.is_symlink()
        assert cluster.pgpass.stat().st_mode & 0o777 == 0o600
    finally:
        data = cluster.data.resolve()
        shutil.rmtree(data.parent if data.is_relative_to(FALLBACK_ROOT) else data, ignore_errors=True)
