"""`annlab ui`: MLflow's UI (and TensorBoard) for the project's store, on loopback by default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from annlab.tracking.store import DEFAULT_URI


def ui_command(host: str, port: int, backend_store_uri: str | None) -> list[str]:
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
    ]


def serve_ui(
    host: str,
    port: int,
    backend_store_uri: str | None,
    tensorboard: bool,
    tensorboard_port: int,
    tb_dir: str = "tb_logs",
) -> str:
    """Run until Ctrl-C; TensorBoard runs beside it when asked and logs exist."""
    board = None
    if tensorboard and Path(tb_dir).is_dir():
        board = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tensorboard.main",
                "--logdir",
                tb_dir,
                "--host",
                host,
                "--port",
                str(tensorboard_port),
            ]
        )
        print(f"TensorBoard: http://{host}:{tensorboard_port}", flush=True)
    print(f"MLflow UI: http://{host}:{port}", flush=True)
    try:
        subprocess.run(ui_command(host, port, backend_store_uri), check=False)
    finally:
        if board is not None:
            board.terminate()
    return "ui: stopped"
