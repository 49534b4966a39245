"""The fitted scaler as a Keras layer, so saved models take raw, unscaled inputs."""

from __future__ import annotations

from typing import Any

import numpy as np


def scaling_layer(scaler: dict[str, Any], input_shape: list[int], name: str = "scaling",
                  features: list[int] | None = None, rescaling: bool = False):
    """`Normalization` with fixed statistics (not trainable, nothing to adapt at load time).

    `rescale` divides by the divisor: Normalization computes (x - 0) / sqrt(divisor**2) in
    float32, bit-identical to the book's `X / 255.` for uint8 pixels; `rescaling=True` uses
    keras' `Rescaling(1 / divisor)` instead (a multiplication, which can differ in the last bit).
    """
    import keras

    kind = scaler.get("kind", "none")
    if kind == "none":
        return None
    if kind == "rescale":
        divisor = float(scaler["divisor"])
        if rescaling:
            return keras.layers.Rescaling(1.0 / divisor, name="rescaling")
        return keras.layers.Normalization(axis=None, mean=0.0, variance=divisor**2, name=name)
    mean = np.asarray(scaler["mean"], dtype=np.float64)
    variance = np.asarray(scaler["variance"], dtype=np.float64)
    if features is not None:
        mean, variance = mean[..., features], variance[..., features]
    shape = [len(features)] if features is not None else list(input_shape)
    axes = tuple(range(1, len(shape) + 1))
    return keras.layers.Normalization(
        axis=axes if len(axes) > 1 else -1,
        mean=mean.reshape(shape), variance=variance.reshape(shape), name=name,
    )
