"""The book's randomized search on California housing, annlab against the plain script, side by
side in one run on the same splits:

- annlab: `annlab-train -m hparams_search=california_random_search` (random sampler, K-fold CV
  per trial with the folds in parallel processes, every fold, trial and the refit tracked in
  MLflow, the refit evaluated on the test split) in a temp copy of the project;
- plain: bench/plain_book_search.py, RandomizedSearchCV(cv=K) over a SciKeras KerasRegressor
  with the same budget (trials, folds, epochs, EarlyStopping(patience=10) on the validation
  split, refit), on annlab's own splits of the same StatLib file.

    pip install -e ".[bench]"                  # SciKeras
    python bench/book_search.py --california PATH/cal_housing.data                    # the book's budget
    python bench/book_search.py --california PATH/cal_housing.data --trials 2 --cv 2 --epochs 3  # quick

Prints each figure with its target: annlab's wall time (tracking included) <= 0.5x the plain
script's, a best CV MSE in the same range (0.8x..1.25x the plain one; the book: 0.319), the best
params, the refit's test MSE, then the README table rows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml
from common import ROOT, line, project_copy, temp_dir, timed

BOOK_CV_MSE = 0.319  # the book's rnd_search_cv.best_score_ (negated)
SEARCH = "california_random_search"


def prepare_splits(project: Path, california: Path) -> Path:
    """annlab's split of the StatLib file, in the project's data cache (where the sweep's jobs
    look for it): the one copy both sides read."""
    from annlab.config import compose_config
    from annlab.data.cache import ensure_prepared

    overrides = [f"hparams_search={SEARCH}", f"dataset.path={california}"]
    cfg = compose_config(overrides, config_dir=project / "conf")
    return ensure_prepared(cfg, root=project / "data" / "cache").resolve()


def annlab_side(project: Path, california: Path, args, store: str) -> dict:
    cmd = [
        "annlab-train",
        "-m",
        f"hparams_search={SEARCH}",
        f"dataset.path={california}",
        f"hydra.sweeper.n_trials={args.trials}",
        f"training.cv_folds={args.cv}",
        f"training.epochs={args.epochs}",
    ]
    wall, rss, _ = timed(cmd, project, {"MLFLOW_TRACKING_URI": store})
    best = yaml.safe_load((project / "reports" / "hparams_search" / f"{SEARCH}_best.yaml").read_text())
    refit = best.get("refit") or {}
    return {
        "epochs_run": epochs_trained(store),
        "wall": wall,
        "rss": rss,
        "best_cv_mse": best["best_value"],
        "best_params": best["params"],
        "refit_test_mse": (refit.get("test_metrics") or {}).get("test_mse"),
        "trials": best["trials"],
        "command": " ".join(cmd[:3]),
    }


def epochs_trained(store: str) -> int:
    """Epochs of every fit of the search (each fold and the refit), from its MLflow runs."""
    import mlflow

    client = mlflow.MlflowClient(store)
    experiment = client.get_experiment_by_name(SEARCH)
    runs = client.search_runs([experiment.experiment_id], max_results=10_000)
    fits = [r for r in runs if "annlab.cv.fold" in r.data.tags or r.data.tags.get("annlab.refit") == "true"]
    return int(sum(r.data.metrics.get("epochs_run", 0) for r in fits))


def plain_side(workdir: Path, data: Path, args) -> dict:
    cmd = [
        "python",
        str(ROOT / "bench" / "plain_book_search.py"),
        f"--data={data}",
        f"--trials={args.trials}",
        f"--cv={args.cv}",
        f"--epochs={args.epochs}",
    ]
    wall, rss, proc = timed(cmd, workdir)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**result, "wall": wall, "rss": rss}


def shown(params: dict) -> str:
    rate = params.get("optimizer.learning_rate", params.get("learning_rate"))
    hidden = params.get("model.n_hidden", params.get("n_hidden"))
    neurons = params.get("model.n_neurons", params.get("n_neurons"))
    return f"n_hidden={hidden}, n_neurons={neurons}, learning_rate={float(rate):.3g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--california", type=Path, required=True, help="the StatLib cal_housing.data file")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--cv", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--plain-first", action="store_true", help="run the plain script first")
    args = parser.parse_args()
    california = args.california.resolve()
    if not california.is_file():
        raise SystemExit(f"{california} not found: pass the StatLib cal_housing.data file with --california.")

    workdir = temp_dir()
    project = project_copy(workdir)
    store = f"sqlite:///{workdir / 'mlflow.db'}"
    data = prepare_splits(project, california)
    budget = f"{args.trials} trials x {args.cv} folds, {args.epochs} epochs"
    print(f"book's search, {budget}; splits in {data}", flush=True)
    sides = ["plain", "annlab"] if args.plain_first else ["annlab", "plain"]
    results: dict[str, dict] = {}
    for side in sides:
        if side == "annlab":
            results[side] = annlab_side(project, california, args, store)
        else:
            results[side] = plain_side(workdir, data, args)
        print(f"{side}: {results[side]['wall']:.1f} s", flush=True)
    ours, plain = results["annlab"], results["plain"]

    ratio = ours["wall"] / plain["wall"]

    def per_epoch(side: str) -> str:
        return f"{results[side]['wall'] / max(1, results[side]['epochs_run']):.3f}"

    mse_ratio = ours["best_cv_mse"] / plain["best_cv_mse"]
    out = [
        line("wall time, annlab (tracking included) (s)", f"{ours['wall']:.1f}"),
        line("wall time, plain RandomizedSearchCV (s)", f"{plain['wall']:.1f}"),
        line("wall time ratio annlab / plain", f"{ratio:.2f}", "<= 0.5", ratio <= 0.5),
        line("best CV MSE, annlab", f"{ours['best_cv_mse']:.4f}", f"book: {BOOK_CV_MSE}"),
        line("best CV MSE, plain", f"{plain['best_cv_mse']:.4f}", f"book: {BOOK_CV_MSE}"),
        line("best CV MSE annlab / plain", f"{mse_ratio:.2f}", "0.8..1.25", 0.8 <= mse_ratio <= 1.25),
        line("best params, annlab", shown(ours["best_params"])),
        line("best params, plain", shown(plain["best_params"])),
        line("refit test MSE, annlab", f"{ours['refit_test_mse']:.4f}"),
        line("refit test MSE, plain", f"{plain['refit_test_mse']:.4f}"),
        line(
            "epochs trained (all folds and the refit), annlab / plain",
            f"{ours['epochs_run']} / {plain['epochs_run']}",
        ),
        line("seconds per epoch trained, annlab / plain", f"{per_epoch('annlab')} / {per_epoch('plain')}"),
        line("peak RSS annlab / plain (MB)", f"{ours['rss']:.0f} / {plain['rss']:.0f}"),
        line("annlab trials", str(ours["trials"])),
    ]
    print("\n".join(out))
    rows = [
        "| search | budget | best CV MSE | best params | refit test MSE | wall time (s) |",
        "|---|---|---|---|---|---|",
        f"| `{ours['command']} dataset.path=...` | {budget} | {ours['best_cv_mse']:.4f} | "
        f"{shown(ours['best_params'])} | {ours['refit_test_mse']:.4f} | {ours['wall']:.0f} "
        f"({ratio:.2f}x plain) |",
        f"| plain `RandomizedSearchCV` + SciKeras (`bench/plain_book_search.py`) | {budget} | "
        f"{plain['best_cv_mse']:.4f} | {shown(plain['best_params'])} | {plain['refit_test_mse']:.4f} | "
        f"{plain['wall']:.0f} |",
        f"| the book (RandomizedSearchCV, Keras 2) | 10 trials x 3 folds, 100 epochs | {BOOK_CV_MSE} | "
        "(not restated here) | | |",
    ]
    print("\nREADME rows:\n" + "\n".join(rows))
    (workdir / "book_search.txt").write_text("\n".join(out + [""] + rows) + "\n")
    print(f"\n(also in {workdir / 'book_search.txt'})")


if __name__ == "__main__":
    main()
