"""K-fold cross-validation of one configuration on the training split, as scikit-learn's
`cv=K` does it (what `RandomizedSearchCV(cv=3)` scores its candidates with):

- folds of the training split only: `KFold(K)` for regression, `StratifiedKFold(K)` for
  classification, no shuffling;
- each fold's model is fitted on the other K-1 folds, with the validation split still the
  early-stopping monitor (as the book passes `validation_data`), then scored on its held-out
  fold with the model's compiled loss and metrics (Keras `evaluate`);
- the configuration's score is the mean over the held-out folds (`summary`).

Folds run in parallel processes (loky's, vendored in joblib) when `training.cv_jobs` and the
cores allow, each with one TensorFlow thread; every fold is seeded alike, so the results do not
depend on where it ran. No MLflow here: `annlab.tracking.training_run` logs each fold as a child run.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from annlab.config.schema import Config
from annlab.data.split import Splits
from annlab.errors import AnnlabError
from annlab.objective import cv_key, held_out_metric

CLASSIFICATION_TASKS = ("multiclass", "binary")


@dataclass
class FoldResult:
    index: int  # 0-based, in scikit-learn's split order
    train_rows: int
    held_out_rows: int
    scores: dict[str, float]  # Keras `evaluate` on the held-out fold: loss and compiled metrics
    history: dict[str, list[float]]  # per-epoch metrics of the fold's fit
    seconds: float
    kept_epoch: int

    @property
    def epochs_run(self) -> int:
        return len(self.history.get("epoch", []))


@dataclass
class CVResult:
    folds: list[FoldResult]
    jobs: int  # processes that fitted the folds (1: in this process)
    seconds: float

    def values(self, name: str) -> list[float]:
        return [fold.scores[name] for fold in self.folds]

    def summary(self) -> dict[str, float]:
        """`cv_<name>_mean` and `cv_<name>_std` of every held-out score (population standard
        deviation, as scikit-learn's `std_test_score`)."""
        out: dict[str, float] = {}
        for name in self.folds[0].scores:
            values = np.asarray(self.values(name), dtype=np.float64)
            out[cv_key(name, "mean")] = float(values.mean())
            out[cv_key(name, "std")] = float(values.std())
        return out

    def objective(self, metric: str) -> float:
        """The configuration's objective: the mean over the held-out folds of the held-out
        counterpart of `objective.metric` (val_loss -> the mean held-out loss)."""
        name = held_out_metric(metric)
        scored = self.folds[0].scores
        if name not in scored:
            raise AnnlabError(
                f"Expected `objective.metric` to have a held-out counterpart among the folds' scores "
                f"({', '.join(sorted(scored))}). Received: objective.metric={metric}."
            )
        return float(np.mean(self.values(name)))


def fold_indices(cfg: Config, splits: Splits) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, held-out rows) of each fold of the training split, as scikit-learn's
    `cv=K` makes them: StratifiedKFold for classification, else KFold, unshuffled."""
    from sklearn.model_selection import KFold, StratifiedKFold

    k = cfg.training.cv_folds
    X, y = splits.train
    if len(X) < k:
        raise AnnlabError(
            f"Expected `training.cv_folds` <= the {len(X)} training rows of {splits.meta.name!r}. "
            f"Received: training.cv_folds={k}."
        )
    classify = splits.meta.task in CLASSIFICATION_TASKS
    splitter = StratifiedKFold(n_splits=k) if classify else KFold(n_splits=k)
    try:
        return [(train, held) for train, held in splitter.split(X, y)]
    except ValueError as err:  # e.g. fewer rows of every class than folds
        raise AnnlabError(
            f"Cannot make {k} stratified folds of {splits.meta.name!r} ({err}): lower `training.cv_folds`."
        ) from None


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def fold_jobs(cfg: Config, n_folds: int) -> int:
    """Processes for the folds: `training.cv_jobs`, or (0) every fold at once when there are at
    most twice as many folds as cores, else one per core. 3 folds on 2 cores finish in 1.5
    fold-times all at once against 2 in two rounds (measured here: 8.9 s against 10.3 s)."""
    cores = available_cores()
    wanted = cfg.training.cv_jobs or (n_folds if n_folds <= 2 * cores else cores)
    return max(1, min(wanted, n_folds))


def cross_validate(cfg: Config, splits: Splits, *, log=print, keep_workers: bool = False) -> CVResult:
    """Fit and score every fold of `cfg` on `splits.train`; `log` gets one line per fold.

    Parallel folds run in loky's reusable worker processes; `keep_workers` leaves them (and the
    TensorFlow they imported) for the next call, e.g. the next trial of a sweep."""
    folds = fold_indices(cfg, splits)
    jobs = fold_jobs(cfg, len(folds))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="annlab-cv-") as work:
        if jobs == 1:
            results = []
            for i, (train, held) in enumerate(folds):
                results.append(fit_fold(cfg, splits, i, train, held, Path(work)))
                _clear_keras()  # the next fold, and the model trained after, start clean
        else:
            worker_cfg = replace(cfg, training=_one_thread(cfg))
            try:
                executor = _workers(jobs)
                futures = [
                    executor.submit(fit_fold_in_worker, worker_cfg, splits, i, train, held, Path(work))
                    for i, (train, held) in enumerate(folds)
                ]
                results = [future.result() for future in futures]
            finally:
                if not keep_workers:
                    stop_workers()
    result = CVResult(results, jobs, time.perf_counter() - start)
    for fold in result.folds:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in fold.scores.items())
        log(
            f"cv: fold {fold.index + 1}/{len(folds)}: held-out {shown} "
            f"({fold.epochs_run} epochs, {fold.seconds:.1f}s)"
        )
    return result


_executor = None  # the fold workers this process started (loky's reusable executor)
_started = False  # whether this process ever started fold workers
_other_feeders: set[threading.Thread] = set()  # queue feeder threads that ran before the executor was made


def _workers(jobs: int):
    """loky's reusable process pool (vendored in joblib; its public API): worker processes
    that outlive one call, so a sweep's trials reuse their TensorFlow. Used directly rather
    than through `joblib.Parallel`, which keeps its executor private (annlab must stop the
    workers before it exits) and registers a temporary folder per call."""
    global _executor, _started, _other_feeders
    from joblib.externals.loky import get_reusable_executor

    if _executor is None:
        _other_feeders = set(queue_feeder_threads())
    _started = True
    # idle workers live 300 s, as under joblib.Parallel (loky's own default is 10 s)
    _executor = get_reusable_executor(max_workers=jobs, reuse=True, timeout=300)
    return _executor


def workers_started() -> bool:
    """Whether this process started fold workers: it must then end by a normal exit, whose
    finalizers release what loky's resource tracker watches (after `os._exit` the tracker
    warns about "leaked" semaphores and folders)."""
    return _started


# The daemon thread that feeds a multiprocessing (and loky) queue's pipe; the name is the one
# `Queue._start_thread` gives it, pinned by tests/test_cv_search.py.
QUEUE_FEEDER_THREAD = "QueueFeederThread"


def stop_workers(seconds: float = 10.0) -> None:
    """End this process's fold workers at once. Left alone, a normal exit waits seconds for each
    to tear its TensorFlow down, and `os._exit` (annlab's stages) would leave them running.

    loky's `shutdown` returns before its call queue's feeder thread has ended, and that daemon
    thread finalizes the queue's semaphores as it ends: unlinks each, then tells loky's resource
    tracker. Racing the interpreter's exit, it was seen stopped between the two (2 of 34 searches):
    the tracker then warned of a "leaked" semaphore after the sweep's last line. Waiting for it
    (no public handle on that thread exists) ends the race."""
    global _executor
    if _executor is None:
        return
    _executor.shutdown(wait=True, kill_workers=True)
    _executor = None
    deadline = time.monotonic() + seconds
    for thread in set(queue_feeder_threads()) - _other_feeders:
        thread.join(max(0.0, deadline - time.monotonic()))


def queue_feeder_threads() -> list[threading.Thread]:
    """The live threads that feed a multiprocessing or loky queue's pipe."""
    return [t for t in threading.enumerate() if t.name == QUEUE_FEEDER_THREAD]


def _one_thread(cfg: Config):
    """Parallel folds take one TensorFlow thread each unless set (n_jobs x threads <= cores)."""
    training = cfg.training
    return replace(
        training,
        intra_op_threads=training.intra_op_threads or 1,
        inter_op_threads=training.inter_op_threads or 1,
    )


def _clear_keras() -> None:
    import gc

    import keras

    keras.backend.clear_session(free_memory=True)
    gc.collect()


def fit_fold_in_worker(
    cfg: Config, splits: Splits, index: int, train: np.ndarray, held: np.ndarray, work: Path
) -> FoldResult:
    """One fold in a joblib worker process (reused between folds and trials): TensorFlow's
    threads and determinism set before its first op, then a clean Keras session."""
    from annlab.training.setup import configure_tensorflow

    configure_tensorflow(cfg.training, cfg.seed)
    _clear_keras()
    return fit_fold(cfg, splits, index, train, held, work)


def fit_fold(
    cfg: Config, splits: Splits, index: int, train: np.ndarray, held: np.ndarray, work: Path
) -> FoldResult:
    """Fit `cfg` on the training rows `train` (validation split monitored as in any training),
    then score the held-out rows `held` with the compiled loss and metrics."""
    from annlab.models.build import model_inputs, model_targets
    from annlab.models.feeding import BATCH_SIZE
    from annlab.training.fit import fit

    X, y = splits.train
    fold_splits = Splits(
        train=(X[train], y[train]),
        valid=splits.valid,
        test=(X[held], y[held]),
        scaler=splits.scaler,  # fitted on the whole training split, as the book's scaler
        meta=splits.meta,
    )
    verbose: Any = 0 if cfg.training.verbose == "auto" else cfg.training.verbose
    fold_cfg = replace(cfg, training=replace(cfg.training, verbose=verbose))
    out_dir = work / f"fold-{index}"
    out_dir.mkdir(parents=True, exist_ok=True)
    result = fit(fold_cfg, fold_splits, out_dir)
    X_held, y_held = fold_splits.test
    scores = result.model.evaluate(
        model_inputs(cfg, X_held),
        model_targets(cfg, y_held),
        batch_size=BATCH_SIZE,
        verbose=0,
        return_dict=True,
    )
    return FoldResult(
        index=index,
        train_rows=len(train),
        held_out_rows=len(held),
        scores={k: float(v) for k, v in scores.items()},
        history=result.history,
        seconds=result.seconds,
        kept_epoch=result.kept_epoch,
    )
