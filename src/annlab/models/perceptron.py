"""The chapter's first model, scikit-learn's Perceptron, as a tracked baseline.

After fitting, its weights go into the equivalent one-layer Keras model (Dense with the
Perceptron's coef_ and intercept_; sigmoid or softmax on top keeps the decision: class 1 iff
w.x + b > 0, or the arg max). The saved `model.keras` is then evaluated, reported, logged and
served exactly like the networks, so baselines and networks compare side by side; and nothing
is pickled.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from annlab.config.schema import Config
from annlab.data.split import Splits
from annlab.models.preprocessing import scaling_layer


def _scaled(X: np.ndarray, scaler: dict[str, Any]) -> np.ndarray:
    """The inputs the Keras twin's Normalization layer will compute, in float32 as it does."""
    X = X.reshape(len(X), -1).astype(np.float32)
    if scaler.get("kind") == "standard":
        mean = np.asarray(scaler["mean"], np.float32).reshape(-1)
        std = np.sqrt(np.asarray(scaler["variance"], np.float32).reshape(-1))
        return (X - mean) / std
    if scaler.get("kind") == "rescale":
        return X / np.float32(scaler["divisor"])
    return X


def fit_perceptron(cfg: Config, splits: Splits):
    """Fit sklearn's Perceptron; return (its Keras twin, one-row history, seconds, the loss the
    twin is compiled with)."""
    import keras
    from sklearn.linear_model import Perceptron

    X_train, y_train = splits.train
    start = time.perf_counter()
    clf = Perceptron(max_iter=cfg.model.max_iter, tol=cfg.model.tol, random_state=cfg.seed)
    clf.fit(_scaled(X_train, splits.scaler), y_train)
    seconds = time.perf_counter() - start

    binary = splits.meta.task == "binary"
    units = 1 if binary else len(clf.classes_)
    inputs = keras.Input(shape=tuple(splits.meta.input_shape), name="features")
    x = inputs
    scaling = scaling_layer(splits.scaler, splits.meta.input_shape)
    if scaling is not None:
        x = scaling(x)
    x = keras.layers.Flatten(name="flatten")(x)
    output = keras.layers.Dense(units, activation="sigmoid" if binary else "softmax", name="output")(x)
    model = keras.Model(inputs, output, name="perceptron")
    model.get_layer("output").set_weights([clf.coef_.T.astype(np.float32), clf.intercept_.astype(np.float32)])
    loss = "binary_crossentropy" if binary else "sparse_categorical_crossentropy"
    model.compile(loss=loss, optimizer="sgd", metrics=["accuracy"])
    model.optimizer.build(model.trainable_variables)  # saved and reloaded like a trained net
    history: dict[str, list[float]] = {"epoch": [0.0]}
    for prefix, (X, y) in (("", splits.train), ("val_", splits.valid)):
        scores = model.evaluate(X, y, verbose=0, return_dict=True)
        for key, value in scores.items():
            history[f"{prefix}{key}"] = [float(value)]
        sk_acc = float(clf.score(_scaled(X, splits.scaler), y))
        history[f"{prefix}sklearn_accuracy"] = [sk_acc]
    return model, history, seconds, loss
