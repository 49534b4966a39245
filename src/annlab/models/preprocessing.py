"""The fitted scaler as a Keras layer, so saved models take raw, unscaled inputs."""

from __future__ import annotations

from typing import Any

import numpy as np


def scaling_layer(
    scaler: dict[str, Any],
    input_shape: list[int],
    name: str = "scaling",
    features: list[int] | None = None,
    rescaling: bool = False,
):
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
        mean=mean.reshape(shape),
        variance=variance.reshape(shape),
        name=name,
    )


def input_layers(
    scaler: dict[str, Any],
    input_shape: list[int],
    name: str = "scaling",
    features: list[int] | None = None,
    rescaling: bool = False,
    clip: float | None = None,
) -> list:
    """The scaling layer, then, with `clip`, scaled values clipped to [-clip, clip].

    A feature far outside the training range (California's AveOccup reaches 1,243 where the
    median is 3) makes a ReLU network extrapolate wildly, and a few such rows dominate a
    test MSE. Clipping uses built-in layers only (x / clip -> hard_tanh -> x * clip), so the
    saved model still loads in safe mode.
    """
    import keras

    scaling = scaling_layer(scaler, input_shape, name=name, features=features, rescaling=rescaling)
    layers = [scaling] if scaling is not None else []
    if clip is not None:
        prefix = name.removesuffix("scaling")
        layers += [
            keras.layers.Rescaling(1.0 / clip, name=f"{prefix}clip_in"),
            keras.layers.Activation("hard_tanh", name=f"{prefix}clip"),
            keras.layers.Rescaling(clip, name=f"{prefix}clip_out"),
        ]
    return layers
