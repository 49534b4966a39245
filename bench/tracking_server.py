"""What tracking costs a training: no MLflow, the local sqlite store, and `annlab server`
(PostgreSQL, proxied artifacts) on 127.0.0.1.

    python bench/tracking_server.py                  # digits, 10 epochs, 3 rounds
    python bench/tracking_server.py --epochs 30 --rounds 5

Each round runs one `annlab-train` (train, evaluate, the model logged) per variant, in a rotating
order, in one project copy; the data are prepared and each store is warmed up (schema, first
experiment) before timing. It prints the best and median wall time per variant, the logging
overhead per training (minus the untracked time; best of rounds, as other work on the machine
only slows a run down), and the server's overhead against sqlite's.
The last lines also time the bare MLflow calls of one training (create the run, log ~70
params, 10 epochs of metrics, 4 small artifacts, end it) without TensorFlow in the process:
the logging cost the training's background thread hides.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from common import BIN, env, line, median, project_copy, temp_dir, timed

TRAIN = ["training.intra_op_threads=1", "training.inter_op_threads=1"]


def start_server(project: Path, port: int) -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen(
        [str(BIN / "annlab"), "server", "--port", str(port)],
        cwd=project,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for out in server.stdout:
        if out.startswith("tracking.uri="):
            return server, out.split("=", 1)[1].strip()
    raise SystemExit(f"annlab server did not start: {server.stderr.read()[-2000:]}")


def train_seconds(project: Path, variant: str, uri: str, epochs: int, tag: str) -> float:
    tracking = ["tracking.enabled=false"] if variant == "none" else [f"tracking.uri={uri}"]
    cmd = ["annlab-train", f"training.epochs={epochs}", *TRAIN, *tracking, f"hydra.run.dir=outputs/{tag}"]
    wall, _, _ = timed(cmd, project)
    return wall


def bare_logging_seconds(uri: str, repeats: int = 5) -> float:
    """Median seconds of one training's MLflow calls in a process that has imported MLflow
    already: the store's own latency, which `annlab-train` pays in its background thread."""
    code = f"""
import os, statistics, tempfile, time
from pathlib import Path
import mlflow
from mlflow.entities import Metric, Param
client = mlflow.MlflowClient({uri!r})
name = "bench_bare"
exp = client.get_experiment_by_name(name)
exp_id = exp.experiment_id if exp else client.create_experiment(name)
folder = Path(tempfile.mkdtemp())
for n in ("history.csv", "summary.txt", "config.yaml", "metrics.json"):
    (folder / n).write_text("x" * 2000)
times = []
for _ in range({repeats}):
    t = time.perf_counter()
    run = client.create_run(exp_id)
    rid = run.info.run_id
    client.log_batch(rid, params=[Param(f"p{{i}}", str(i)) for i in range(70)])
    for epoch in range(10):
        now = int(time.time() * 1000)
        names = ("loss", "accuracy", "val_loss", "val_accuracy")
        client.log_batch(rid, metrics=[Metric(k, 0.5, now, epoch) for k in names])
    for n in folder.iterdir():
        client.log_artifact(rid, str(n))
    client.set_terminated(rid)
    times.append(time.perf_counter() - t)
print(statistics.median(times))
"""
    proc = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return float(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=5077)
    args = parser.parse_args()

    workdir = temp_dir()
    workdir.chmod(0o755)  # as root, the cluster's OS user must enter the project
    project = project_copy(workdir)
    server, server_uri = start_server(project, args.port)
    try:
        uris = {"none": "", "sqlite": f"sqlite:///{project / 'bench.db'}", "server": server_uri}
        for variant, uri in uris.items():  # prepare the data, create each store's schema
            train_seconds(project, variant, uri, 1, f"warm-{variant}")
        walls: dict[str, list[float]] = {v: [] for v in uris}
        order = list(uris)
        for r in range(args.rounds):
            for variant in order[r % 3 :] + order[: r % 3]:
                walls[variant].append(
                    train_seconds(project, variant, uris[variant], args.epochs, f"{variant}{r}")
                )
        bare = {v: bare_logging_seconds(uris[v]) for v in ("sqlite", "server")}
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)
        shutil.rmtree(workdir, ignore_errors=True)

    best = {v: min(w) for v, w in walls.items()}  # other work on the machine only slows a run
    med = {v: median(w) for v, w in walls.items()}
    print(f"annlab-train, digits, {args.epochs} epochs, {args.rounds} rounds (wall seconds: best, median):")
    for variant in uris:
        rounds = " ".join(f"{w:.2f}" for w in walls[variant])
        print(line(f"  {variant}", f"{best[variant]:.2f} s, {med[variant]:.2f} s", f"[{rounds}]"))
    for variant in ("sqlite", "server"):
        extra, extra_med = best[variant] - best["none"], med[variant] - med["none"]
        print(
            line(
                f"  logging overhead per training, {variant}",
                f"{extra:+.2f} s ({extra / best['none']:+.1%})",
                f"median {extra_med:+.2f} s",
            )
        )
    print(line("  server - sqlite, per training", f"{best['server'] - best['sqlite']:+.2f} s"))
    for variant in ("sqlite", "server"):
        print(line(f"  bare MLflow calls of one training, {variant}", f"{bare[variant] * 1000:.0f} ms"))
    print(line("  bare calls, server / sqlite", f"{bare['server'] / bare['sqlite']:.2f}x"))


if __name__ == "__main__":
    main()
