"""The chapter's Sequential MLP: [scaling] -> Flatten -> Dense x n_hidden -> output."""

from __future__ import annotations

from typing import Any

from annlab.config.schema import Config
from annlab.data.dataset import DatasetMeta
from annlab.models.heads import Head
from annlab.models.preprocessing import input_layers


def layer_sizes(n_hidden: int, n_neurons: int | list[int]) -> list[int]:
    """One size per hidden layer: an int repeats; a list is cut, or its last size repeats."""
    sizes = list(n_neurons) if isinstance(n_neurons, list) else [n_neurons]
    if n_hidden <= len(sizes):
        return sizes[:n_hidden]
    return sizes + [sizes[-1]] * (n_hidden - len(sizes))


def build_mlp(cfg: Config, meta: DatasetMeta, scaler: dict[str, Any], head: Head):
    import keras

    model = keras.Sequential(name="mlp")
    model.add(keras.Input(shape=tuple(meta.input_shape), name="features"))
    for layer in input_layers(
        scaler, meta.input_shape, rescaling=cfg.model.rescaling_layer, clip=cfg.split.clip
    ):
        model.add(layer)
    model.add(keras.layers.Flatten(name="flatten"))
    for i, units in enumerate(layer_sizes(cfg.model.n_hidden, cfg.model.n_neurons)):
        model.add(
            keras.layers.Dense(
                units,
                activation=cfg.model.activation,
                kernel_initializer=cfg.model.kernel_initializer,
                name=f"hidden_{i + 1}",
            )
        )
        if cfg.model.dropout > 0:
            model.add(keras.layers.Dropout(cfg.model.dropout, name=f"dropout_{i + 1}"))
    model.add(keras.layers.Dense(head.units, activation=head.activation, name="output"))
    return model
