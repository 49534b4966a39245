"""The book's Fashion-MNIST script (Hands-On ML, chapter 10), as a plain Keras baseline.

    KERAS_HOME=... python bench/plain_keras_fashion.py --epochs 30 --seed 42

Loads with keras.datasets (reading $KERAS_HOME/datasets/fashion-mnist), scales X / 255. in
NumPy float64, trains Flatten -> 300 -> 100 -> 10 with SGD (0.01), batch 32; prints one JSON line.
Seeds and op determinism are set exactly as annlab sets them, so both sides start equal.
"""

import argparse
import json
import os
import resource
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    start = time.perf_counter()
    import tensorflow as tf
    from tensorflow import keras

    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    fashion_mnist = keras.datasets.fashion_mnist
    (X_train_full, y_train_full), (X_test, y_test) = fashion_mnist.load_data()
    X_valid, X_train = X_train_full[:5000] / 255.0, X_train_full[5000:] / 255.0
    y_valid, y_train = y_train_full[:5000], y_train_full[5000:]
    X_test = X_test / 255.0

    model = keras.models.Sequential(
        [
            keras.Input(shape=[28, 28]),
            keras.layers.Flatten(),
            keras.layers.Dense(300, activation="relu"),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    fit_start = time.perf_counter()
    history = model.fit(
        X_train,
        y_train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_data=(X_valid, y_valid),
        verbose=0,
    )
    fit_seconds = time.perf_counter() - fit_start
    test_loss, test_accuracy = model.evaluate(X_test, y_test, verbose=0)
    print(
        json.dumps(
            {
                "val_accuracy": history.history["val_accuracy"],
                "test_accuracy": test_accuracy,
                "fit_seconds": fit_seconds,
                "samples_per_second": len(X_train) * args.epochs / fit_seconds,
                "wall_seconds": time.perf_counter() - start,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
