"""Speed, tracking cost and memory of annlab against the book's plain Keras script, on the real
Fashion-MNIST files. Both sides run in this process's environment on this machine, alternating.

    python bench/speed.py                       # 30 and 10 epochs, 1 repeat each
    python bench/speed.py --epochs 10 --repeats 3

An untimed round of each side comes first (MLflow creates a fresh store's schema once; files
come into the page cache); its time beyond fitting is printed apart. Then each figure, with its
target (from the project's performance issue):
  end to end   `dvc repro` (5 stages, MLflow on) / plain script wall time <= 0.5 (30 epochs),
               <= 0.6 (10 epochs), with the same validation and test accuracy to 3 decimals
  fixed cost   the pipeline's wall time beyond fitting (5 processes, imports, MLflow, report,
               DVC): < 8 s; printed beside it, the plain script's own wall time beyond fitting
               (its TensorFlow import, loading, test evaluation) and the difference
  no-op        a second `dvc repro` runs no stage, < 2 s
  throughput   train-stage samples/s at batch 32 >= 2.5x the plain model.fit on float64
  tracking     train stage (10 epochs) with MLflow logging / without <= 1.03
  memory       train-stage peak RSS <= 0.75x the plain script's
"""

from __future__ import annotations

import argparse
import json
import re
import time

import pandas as pd
from common import keras_home, line, median, project_copy, require_fashion, run, temp_dir, timed

TRAIN_ROWS = 55_000


def params(project, *overrides: str) -> None:
    fashion = require_fashion()
    run(["annlab", "params", "experiment=fashion_mnist_mlp", f"dataset.path={fashion}", *overrides], project)


def pipeline_side(project, store: str) -> dict:
    wall, rss, proc = timed(["dvc", "repro", "-f"], project, {"MLFLOW_TRACKING_URI": store})
    history = pd.read_csv(project / "models" / "history.csv")
    run_info = json.loads((project / "models" / "run.json").read_text())
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    fit_seconds = float(re.search(r"epochs in ([\d.]+)s", proc.stdout).group(1))
    return {
        "wall": wall,
        "rss": rss,
        "fixed": wall - fit_seconds,
        "val_accuracy": float(history["val_accuracy"].iloc[-1]),
        "test_accuracy": float(metrics["test_accuracy"]),
        "run_id": run_info["run_id"],
    }


def plain_side(workdir, epochs: int) -> dict:
    from common import ROOT

    wall, rss, proc = timed(
        ["python", str(ROOT / "bench" / "plain_keras_fashion.py"), "--epochs", str(epochs)],
        workdir,
        {"KERAS_HOME": str(keras_home(workdir))},
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "wall": wall,
        "rss": rss,
        "fixed": wall - result["fit_seconds"],
        "val_accuracy": result["val_accuracy"][-1],
        "samples_per_second": result["samples_per_second"],
        "test_accuracy": result["test_accuracy"],
    }


def train_stage(project, store: str, *overrides: str) -> tuple[float, float, float]:
    """Wall time, peak RSS and samples/s of `python -m annlab.stages.train` alone."""
    params(project, *overrides)
    wall, rss, proc = timed(["python", "-m", "annlab.stages.train"], project, {"MLFLOW_TRACKING_URI": store})
    match = re.search(r"(\d+) epochs in ([\d.]+)s", proc.stdout)
    epochs, seconds = int(match.group(1)), float(match.group(2))
    return wall, rss, TRAIN_ROWS * epochs / seconds


def warm_up(project, workdir, store: str) -> dict:
    """One untimed round of each side (1 epoch) before the timed ones: MLflow creates its
    store's schema on a project's first run only, and both sides' files and packages come into
    the page cache. The figures after it are what a user sees from the second run on; the first
    run's is printed apart."""
    params(project, "training.epochs=1")
    first = pipeline_side(project, store)
    plain_side(workdir, 1)
    return first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[30, 10])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--tracking-repeats", type=int, default=2)
    parser.add_argument("--tracking-epochs", type=int, default=10)
    parser.add_argument("--throughput-repeats", type=int, default=3)
    args = parser.parse_args()
    workdir = temp_dir()
    project = project_copy(workdir)
    store = f"sqlite:///{workdir / 'mlflow.db'}"
    out: list[str] = []

    first = warm_up(project, workdir, store)
    out.append(
        line(
            "first dvc repro on a fresh MLflow store, 1 epoch: time beyond fitting (s)",
            f"{first['fixed']:.1f}",
        )
    )
    print(out[-1], flush=True)
    for epochs in args.epochs:
        params(project, f"training.epochs={epochs}")
        ours, plain = [], []
        for _ in range(args.repeats):
            ours.append(pipeline_side(project, store))
            plain.append(plain_side(workdir, epochs))
        ratio = median([o["wall"] for o in ours]) / median([p["wall"] for p in plain])
        target = 0.5 if epochs >= 30 else 0.6
        same = {round(o["val_accuracy"], 3) for o in ours} == {round(p["val_accuracy"], 3) for p in plain}
        same_test = {round(o["test_accuracy"], 3) for o in ours} == {
            round(p["test_accuracy"], 3) for p in plain
        }
        fixed = median([o["fixed"] for o in ours])
        plain_fixed = median([p["fixed"] for p in plain])
        out += [
            line(
                f"end to end, {epochs} epochs: dvc repro (median s)",
                f"{median([o['wall'] for o in ours]):.1f}",
            ),
            line(
                f"end to end, {epochs} epochs: plain script (median s)",
                f"{median([p['wall'] for p in plain]):.1f}",
            ),
            line(f"end to end, {epochs} epochs: ratio", f"{ratio:.2f}", f"<= {target}", ratio <= target),
            line(
                f"validation accuracy, {epochs} epochs: annlab / plain",
                f"{ours[0]['val_accuracy']:.4f} / {plain[0]['val_accuracy']:.4f}",
                "equal to 3 decimals",
                same,
            ),
            line(
                f"test accuracy, {epochs} epochs: annlab / plain",
                f"{ours[0]['test_accuracy']:.4f} / {plain[0]['test_accuracy']:.4f}",
                "equal to 3 decimals",
                same_test,
            ),
            line(f"fixed cost beyond fitting, {epochs} epochs (median s)", f"{fixed:.1f}", "< 8", fixed < 8),
            line(f"plain script's time beyond fitting, {epochs} epochs (median s)", f"{plain_fixed:.1f}"),
            line(f"fixed cost beyond the plain script's, {epochs} epochs (s)", f"{fixed - plain_fixed:.1f}"),
        ]
        print("\n".join(out[-8:]), flush=True)

    start = time.perf_counter()
    noop = run(["dvc", "repro"], project, {"MLFLOW_TRACKING_URI": store})
    noop_s = time.perf_counter() - start
    ran = re.findall(r"Running stage", noop.stdout)
    out.append(
        line(
            "no-op dvc repro (s), stages run", f"{noop_s:.2f}, {len(ran)}", "< 2 s, 0", noop_s < 2 and not ran
        )
    )
    print(out[-1], flush=True)

    # Throughput: the train stage alone, 3 epochs, against plain fit at batch 32, alternating
    # (the plain script's speed varies by a third from run to run on a shared machine).
    plains, ours_sps = [], []
    for _ in range(args.throughput_repeats):
        plains.append(plain_side(workdir, 3))
        ours_sps.append(train_stage(project, store, "training.epochs=3", "training.batch_size=32")[2])
    plain_sps = median([p["samples_per_second"] for p in plains])
    ratio = median(ours_sps) / plain_sps
    out.append(
        line(
            "throughput at batch 32: annlab / plain (median samples/s)",
            f"{median(ours_sps):,.0f} / {plain_sps:,.0f}",
        )
    )
    out.append(line("throughput ratio at batch 32", f"{ratio:.2f}x", ">= 2.5x", ratio >= 2.5))
    print("\n".join(out[-2:]), flush=True)
    for batch in (128, 512):
        _, _, sps = train_stage(project, store, "training.epochs=3", f"training.batch_size={batch}")
        out.append(line(f"throughput at batch {batch} (samples/s)", f"{sps:,.0f}"))
        print(out[-1], flush=True)

    # Tracking cost and memory: the train stage with and without MLflow, alternating.
    with_t, without_t, rss = [], [], []
    for _ in range(args.tracking_repeats):
        epochs = f"training.epochs={args.tracking_epochs}"
        wall, peak, _ = train_stage(project, store, epochs)
        with_t.append(wall)
        rss.append(peak)
        wall, _, _ = train_stage(project, store, epochs, "tracking.enabled=false")
        without_t.append(wall)
    cost = median(with_t) / median(without_t)
    out.append(
        line(
            "train stage with / without MLflow (median s)", f"{median(with_t):.1f} / {median(without_t):.1f}"
        )
    )
    out.append(line("tracking cost", f"{cost:.3f}x", "<= 1.03x", cost <= 1.03))
    plain_rss = median([p["rss"] for p in plains])
    mem = median(rss) / plain_rss
    out.append(line("peak RSS train stage / plain script (MB)", f"{median(rss):.0f} / {plain_rss:.0f}"))
    out.append(line("memory ratio", f"{mem:.2f}", "<= 0.75", mem <= 0.75))
    print("\n".join(out[-4:]), flush=True)
    (workdir / "speed.txt").write_text("\n".join(out) + "\n")
    print(f"\n(results also in {workdir / 'speed.txt'})")


if __name__ == "__main__":
    main()
