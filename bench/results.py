"""The chapter's experiments on the real data sets: writes reports/benchmarks.md (a table of
experiment, command, metric, epochs, wall time), copies it into the README between its
`results` markers, and prints it.

    python bench/results.py --california /path/to/cal_housing.data \
        --fashion /usr/share/datasets/fashion-mnist

Each experiment runs through `annlab-train` (the same code as the DVC stages) in a temp copy of
the project with its own MLflow store; the plain Keras script of the book runs beside the
Fashion-MNIST replica with the same seed for comparison.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import ROOT, keras_home, project_copy, run, temp_dir

START, END = "<!-- results:start -->", "<!-- results:end -->"
ROWS = [
    # experiment, data flag, metric, target (text), check
    (
        "fashion_mnist_mlp",
        "fashion",
        "test_accuracy",
        "within 0.01 of the book's 0.885",
        lambda v: abs(v - 0.885) <= 0.01,
    ),
    ("fashion_mnist_tuned", "fashion", "test_accuracy", ">= 0.90", lambda v: v >= 0.90),
    ("california_mlp", "california", "test_mse", "(the book's MLP)", None),
    (
        "california_tuned",
        "california",
        "test_mse",
        "<= 0.27 (book's search: CV MSE 0.319)",
        lambda v: v <= 0.27,
    ),
]


def run_experiment(project: Path, name: str, data: str, store: str) -> dict:
    out = project / "outputs" / name
    start = time.perf_counter()
    run(
        ["annlab-train", f"experiment={name}", f"dataset.path={data}", f"hydra.run.dir={out}"],
        project,
        {"MLFLOW_TRACKING_URI": store},
    )
    wall = time.perf_counter() - start
    metrics = json.loads((out / "reports" / "metrics.json").read_text())
    history = (out / "models" / "history.csv").read_text().strip().splitlines()
    return {"metrics": metrics, "epochs": len(history) - 1, "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fashion", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--california", required=True, help="StatLib cal_housing.data / .tgz")
    parser.add_argument("--only", nargs="*", help="experiment names to run (default: all)")
    args = parser.parse_args()
    workdir = temp_dir()
    project = project_copy(workdir)
    store = f"sqlite:///{workdir / 'mlflow.db'}"
    lines = [
        "| experiment | command | metric | target | epochs | wall time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for name, kind, metric, target, check in ROWS:
        if args.only and name not in args.only:
            continue
        data = args.fashion if kind == "fashion" else args.california
        result = run_experiment(project, name, data, store)
        value = result["metrics"][metric]
        verdict = "" if check is None else (" ✔" if check(value) else " ✘")
        command = f"`annlab-train experiment={name} dataset.path=...`"
        lines.append(
            f"| {name} | {command} | {metric} = {value:.4f}{verdict} | {target} | "
            f"{result['epochs']} | {result['wall']:.0f} |"
        )
        print(lines[-1], flush=True)
        if name == "fashion_mnist_mlp":
            plain = run(
                ["python", str(ROOT / "bench" / "plain_keras_fashion.py"), "--epochs", str(result["epochs"])],
                workdir,
                {"KERAS_HOME": str(keras_home(workdir))},
            )
            numbers = json.loads(plain.stdout.strip().splitlines()[-1])
            same = abs(numbers["test_accuracy"] - value) < 5e-4
            lines.append(
                f"| book's plain Keras script, same seed | "
                f"`python bench/plain_keras_fashion.py` | test_accuracy = "
                f"{numbers['test_accuracy']:.4f}{' ✔' if same else ' ✘'} | equal to "
                f"annlab's | {result['epochs']} | {numbers['wall_seconds']:.0f} |"
            )
            print(lines[-1], flush=True)
    table = "\n".join(lines) + "\n"
    target = ROOT / "reports" / "benchmarks.md"
    target.parent.mkdir(exist_ok=True)
    target.write_text(
        "# Results on the real data sets\n\nMeasured on 2 CPU cores with "
        "`python bench/results.py`.\n\n" + table
    )
    print(f"\nwritten to {target}")
    if not args.only:
        update_readme(ROOT / "README.md", table)


def update_readme(readme: Path, table: str) -> None:
    """Replace the results table between the README's markers (left alone if they are gone)."""
    text = readme.read_text()
    if START not in text or END not in text:
        print(f"{readme}: no {START} / {END} markers; table not copied")
        return
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{table}{END}{tail}")
    print(f"written to {readme}")


if __name__ == "__main__":
    main()
