"""The book's randomized search, plain: scikit-learn's RandomizedSearchCV over a SciKeras
`KerasRegressor` (the successor of the book's `keras.wrappers.scikit_learn`), as the chapter
runs it on California housing:

    n_hidden in [0, 1, 2, 3], n_neurons in 1..99, learning_rate reciprocal(3e-4, 3e-2), SGD, MSE,
    RandomizedSearchCV(n_iter=10, cv=3), fit(epochs=100, validation_data=valid) with
    EarlyStopping(patience=10), refit of the best on the whole training split.

The splits are annlab's own (train.npz / valid.npz / test.npz written by annlab's split, read
here with NumPy), so both sides of bench/book_search.py see the same rows; the inputs are
standardised by a Normalization layer with the training split's statistics, as the book's
scaler fitted on the training split. Prints one JSON line: best CV MSE, best params, the
refit's test MSE, seconds.

    python bench/plain_book_search.py --data DIR [--trials 10] [--cv 3] [--epochs 100]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def load(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(folder / f"{name}.npz", allow_pickle=False) as data:
        return data["X"].astype(np.float32), data["y"].astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="annlab's processed splits (*.npz)")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--cv", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    start = time.perf_counter()
    import keras
    from scikeras.wrappers import KerasRegressor
    from scipy.stats import reciprocal
    from sklearn.metrics import mean_squared_error
    from sklearn.model_selection import RandomizedSearchCV

    X_train, y_train = load(args.data, "train")
    X_valid, y_valid = load(args.data, "valid")
    X_test, y_test = load(args.data, "test")
    keras.utils.set_random_seed(args.seed)
    scaler = keras.layers.Normalization()
    scaler.adapt(X_train)  # the training split's mean and variance, as the book's scaler
    mean, variance = np.array(scaler.mean).ravel(), np.array(scaler.variance).ravel()

    def build_model(n_hidden=1, n_neurons=30, learning_rate=3e-3):
        model = keras.Sequential(
            [keras.Input(shape=X_train.shape[1:]), keras.layers.Normalization(mean=mean, variance=variance)]
        )
        for _ in range(n_hidden):
            model.add(keras.layers.Dense(n_neurons, activation="relu"))
        model.add(keras.layers.Dense(1))
        model.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=learning_rate))
        return model

    epochs_run = [0]  # every fit's epochs, the refit's included (early stopping varies them)

    class EpochCounter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            epochs_run[0] += 1

    # The book passes callbacks to `fit`; SciKeras 0.13 drops those (its `_fit_keras_model`
    # keeps only the estimator's own `callbacks`), so EarlyStopping goes to the estimator.
    keras_reg = KerasRegressor(
        model=build_model,
        n_hidden=1,
        n_neurons=30,
        learning_rate=3e-3,
        verbose=0,
        callbacks=[keras.callbacks.EarlyStopping(patience=10), EpochCounter()],
    )
    param_distribs = {
        "n_hidden": [0, 1, 2, 3],
        "n_neurons": np.arange(1, 100).tolist(),
        "learning_rate": reciprocal(3e-4, 3e-2),
    }
    search = RandomizedSearchCV(
        keras_reg,
        param_distribs,
        n_iter=args.trials,
        cv=args.cv,
        scoring="neg_mean_squared_error",
        random_state=args.seed,
    )
    search_start = time.perf_counter()
    search.fit(X_train, y_train, epochs=args.epochs, validation_data=(X_valid, y_valid))
    search_seconds = time.perf_counter() - search_start
    test_mse = float(mean_squared_error(y_test, search.best_estimator_.predict(X_test, verbose=0)))
    cv = search.cv_results_
    best = {k: float(v) if k == "learning_rate" else int(v) for k, v in search.best_params_.items()}
    print(
        json.dumps(
            {
                "best_cv_mse": float(-search.best_score_),
                "best_cv_mse_std": float(cv["std_test_score"][search.best_index_]),
                "best_params": best,
                "refit_test_mse": test_mse,
                "cv_mse": [float(-s) for s in cv["mean_test_score"]],
                "epochs_run": epochs_run[0],
                "search_seconds": search_seconds,
                "seconds": time.perf_counter() - start,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
