"""Wall time of an 8-job Hydra sweep run sequentially and with the joblib launcher.

    python bench/sweep_parallel.py                 # digits, 30 epochs per job (the default)
    python bench/sweep_parallel.py --epochs 10 --oversubscribed

Sequential: the basic launcher, one process, TensorFlow's own thread counts (what
`annlab-train -m ...` does by default). Parallel: `hydra/launcher=joblib hydra.launcher.n_jobs=2`
with one TensorFlow thread per job (`training.intra_op_threads=1 training.inter_op_threads=1`),
the setting docs/sweeps.md recommends for 2 cores. `--oversubscribed` also times the parallel
sweep with TensorFlow's default threads. Each run logs to its own temp MLflow store; the data
are prepared once before timing; the variants alternate over `--repeat` rounds and the best time
of each counts (other work on the machine only ever slows a run down). It also prints how much
two CPU-bound processes gain from running side by side at that moment, the ceiling for any
parallel launcher. Target: parallel at least 1.5x faster.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRID = ["model.n_hidden=1,2", "optimizer.learning_rate=0.01,0.03", "model.n_neurons=50,100"]
ONE_THREAD = ["training.intra_op_threads=1", "training.inter_op_threads=1"]
JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]


def annlab_train(workdir: Path, args: list[str], store: str) -> float:
    """Run `annlab-train` in `workdir`; return its wall time in seconds."""
    env = dict(
        os.environ,
        MLFLOW_TRACKING_URI=f"sqlite:///{workdir / store}",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    start = time.perf_counter()
    proc = subprocess.run(["annlab-train", *args], cwd=workdir, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"annlab-train {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return seconds


def _spin(n: int) -> float:
    start = time.perf_counter()
    total = 0
    for i in range(n):
        total += i
    return time.perf_counter() - start


def cpu_parallelism(n: int = 15_000_000) -> float:
    """How much faster 2 CPU-bound processes finish side by side than one after the other,
    right now: 2.0 on 2 idle cores, less when other work shares the machine."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_spin, [1000, 1000]))  # start the workers
        alone = sum(pool.submit(_spin, n).result() for _ in range(2))
        start = time.perf_counter()
        list(pool.map(_spin, [n, n]))
        together = time.perf_counter() - start
    return alone / together


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument(
        "--repeat", type=int, default=2, help="rounds, alternating the variants; the best time of each counts"
    )
    parser.add_argument(
        "--oversubscribed",
        action="store_true",
        help="also time joblib with TensorFlow's default thread counts",
    )
    args = parser.parse_args()
    common = [*GRID, f"training.epochs={args.epochs}", "training.verbose=0"]
    variants = {
        "sequential (basic launcher, default threads)": common,
        "joblib n_jobs=2, 1 thread per job": [*JOBLIB, *ONE_THREAD, *common],
    }
    if args.oversubscribed:
        variants["joblib n_jobs=2, default threads"] = [*JOBLIB, *common]
    times: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="annlab-bench-") as tmp:
        workdir = Path(tmp)
        shutil.copytree(ROOT / "conf", workdir / "conf")
        annlab_train(
            workdir,
            ["training.epochs=1", "tracking.enabled=false", "hydra.run.dir=outputs/warmup"],
            "warmup.db",
        )
        print(
            f"8-job sweep on digits ({args.epochs} epochs per job), {os.cpu_count()} cores; "
            f"2 CPU-bound processes side by side run {cpu_parallelism():.2f}x faster here now"
        )
        for round_ in range(args.repeat):
            order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
            for i, name in enumerate(order):
                seconds = annlab_train(workdir, ["-m", *variants[name]], f"r{round_}-{i}.db")
                times[name].append(seconds)
        sequential = min(next(iter(times.values())))
        for name, values in times.items():
            shown = ", ".join(f"{v:.1f}" for v in values)
            print(
                f"{name:46s} best {min(values):6.1f} s  (runs: {shown}; "
                f"ratio {sequential / min(values):.2f}x)"
            )
        ratio = sequential / min(times["joblib n_jobs=2, 1 thread per job"])
        print(
            f"ratio sequential / parallel: {ratio:.2f}x (target >= 1.5x: "
            f"{'met' if ratio >= 1.5 else 'NOT met'})"
        )


if __name__ == "__main__":
    main()
