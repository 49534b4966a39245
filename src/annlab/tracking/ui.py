"""`annlab ui`: MLflow's UI (and TensorBoard) for the project's store, on loopback by default.

The servers run in process groups of their own, so the terminal's Ctrl-C reaches annlab only
(not every uvicorn worker, each printing its traceback). On SIGINT, SIGTERM or SIGHUP annlab
stops each whole group (SIGTERM, then SIGKILL after a grace period), waits for it, and ends
with one line; the ports are free again. The servers' own output goes to `.annlab/ui.log`.

MLflow 3.17's UI opens an experiment on its GenAI overview unless its sidebar switch is on
"Machine learning" (remembered per browser); experiments are marked as model training
(`store.EXPERIMENT_KIND_TAG`) for the UIs and tools that read the mark, and `annlab ui` prints
for each experiment a link that opens its runs table in the machine-learning view.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from annlab.errors import AnnlabError
from annlab.tracking.server.mlflow_process import without_job_runner
from annlab.tracking.store import DEFAULT_URI

LOG_FILE = Path(".annlab") / "ui.log"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE_SECONDS = 10.0
SHOWN_EXPERIMENTS = 10


class _Stop(Exception):
    """A stop signal arrived."""


def ui_command(host: str, port: int, backend_store_uri: str | None) -> list[str]:
    """One uvicorn worker: a UI for one person (MLflow's default, 4, is four processes that
    each import MLflow: seconds of CPU and hundreds of MB before the page answers)."""
    uri = backend_store_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def tensorboard_command(host: str, port: int, tb_dir: str) -> list[str]:
    return [sys.executable, "-m", "tensorboard.main", "--logdir", tb_dir, "--host", host, "--port", str(port)]


def runs_link(base: str, experiment_id: str) -> str:
    """Opens the experiment's runs table, whatever the browser's workflow switch says."""
    return f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def check_port_free(host: str, port: int, flag: str) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            sock.bind((host, port))
            sock.listen()
        except OSError as err:
            raise AnnlabError(
                f"Port {port} on {host} is taken ({err.strerror}): stop what listens there or pass "
                f"`{flag} PORT`."
            ) from None


def local_address(host: str) -> str:
    """Where to reach a server bound to `host` from this machine."""
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def start(cmd: list[str], log) -> subprocess.Popen:
    """A server in a new session: its own process group, out of the terminal's reach."""
    env = without_job_runner(dict(os.environ))
    return subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, env=env
    )


def stop_group(process: subprocess.Popen, grace: float = GRACE_SECONDS) -> None:
    """SIGTERM the whole process group, SIGKILL what is left after `grace` seconds, reap."""
    pgid = process.pid  # start_new_session: the group id is the leader's pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while True:
        process.poll()  # reap the leader as soon as it exits
        if not group_alive(pgid):
            break
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            break
        time.sleep(0.1)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)


def group_alive(pgid: int) -> bool:
    """True while a process of the group runs (zombies waiting for their reaper do not count:
    they hold no port)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def wait_until_up(url: str, process: subprocess.Popen, what: str, seconds: float = 120) -> None:
    import requests

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AnnlabError(
                f"{what} exited with code {process.returncode} before answering: see {LOG_FILE} "
                f"({last_line(LOG_FILE)})."
            )
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).ok:
                return
        time.sleep(0.3)
    raise AnnlabError(f"{what} did not answer {url} within {seconds:.0f} s: see {LOG_FILE}.")


def last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


def experiment_links(base: str, local: str) -> list[str]:
    """One line per experiment (most recently updated first): name and runs-table link."""
    import requests

    try:
        answer = requests.post(
            f"{local}/api/2.0/mlflow/experiments/search",
            json={"max_results": SHOWN_EXPERIMENTS + 1, "order_by": ["last_update_time DESC"]},
            timeout=10,
        )
        experiments = answer.json().get("experiments", [])
    except (requests.RequestException, ValueError):
        return []
    shown = [e for e in experiments if e["name"] != "Default"][:SHOWN_EXPERIMENTS]
    return [f"  {e['name']}: {runs_link(base, e['experiment_id'])}" for e in shown]


def _raise_stop(signum, frame):  # noqa: ARG001
    raise _Stop(signum)


def serve_ui(
    host: str,
    port: int,
    backend_store_uri: str | None,
    tensorboard: bool,
    tensorboard_port: int,
    tb_dir: str = "tb_logs",
) -> str:
    """Run until SIGINT / SIGTERM / SIGHUP or a server exits; TensorBoard beside it when asked."""
    board_wanted = tensorboard and Path(tb_dir).is_dir()
    check_port_free(host, port, "--port")
    if board_wanted:
        check_port_free(host, tensorboard_port, "--tensorboard-port")
    LOG_FILE.parent.mkdir(parents=True, exist_ok=True)
    base = f"http://{local_address(host)}:{port}"
    children: list[tuple[str, subprocess.Popen]] = []
    previous = {sig: signal.signal(sig, _raise_stop) for sig in STOP_SIGNALS}
    try:
        with open(LOG_FILE, "ab") as log:
            children.append(("MLflow UI", start(ui_command(host, port, backend_store_uri), log)))
            if board_wanted:
                board = tensorboard_command(host, tensorboard_port, tb_dir)
                children.append(("TensorBoard", start(board, log)))
        wait_until_up(f"{base}/health", children[0][1], "mlflow server")
        lines = [f"MLflow UI: {base} (Ctrl-C stops it; server log: {LOG_FILE})"]
        lines += experiment_links(base, base)
        if board_wanted:
            lines.append(f"TensorBoard: http://{local_address(host)}:{tensorboard_port}")
        print("\n".join(lines), flush=True)
        while True:
            for name, child in children:
                if child.poll() is not None:
                    raise AnnlabError(
                        f"{name} exited with code {child.returncode}: see {LOG_FILE} ({last_line(LOG_FILE)})."
                    )
            time.sleep(0.5)
    except _Stop:
        pass
    finally:
        # A second Ctrl-C while stopping must not leave a server behind.
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        for _, child in children:
            stop_group(child)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if board_wanted:
        return f"ui: stopped; ports {port} and {tensorboard_port} are free"
    return f"ui: stopped; port {port} is free"
