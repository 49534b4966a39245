"""The Functional API Wide & Deep network (Cheng et al. 2016) in the book's three forms:
one input; two inputs (wide and deep feature subsets); and an auxiliary output on the deep path.
"""

from __future__ import annotations

from typing import Any

from annlab.config.schema import Config
from annlab.data.dataset import DatasetMeta
from annlab.models.heads import Head
from annlab.models.mlp import layer_sizes
from annlab.models.preprocessing import input_layers


def _normalized(inputs, scaler, meta: DatasetMeta, name: str, features: list[int] | None, clip: float | None):
    for layer in input_layers(scaler, meta.input_shape, name=f"{name}_scaling", features=features, clip=clip):
        inputs = layer(inputs)
    return inputs


def build_wide_deep(cfg: Config, meta: DatasetMeta, scaler: dict[str, Any], head: Head):
    import keras

    m = cfg.model
    two_inputs = m.wide_features is not None
    if two_inputs:
        input_wide = keras.Input(shape=(len(m.wide_features),), name="wide")
        input_deep = keras.Input(shape=(len(m.deep_features or []),), name="deep")
        inputs: Any = {"wide": input_wide, "deep": input_deep}
        wide = _normalized(input_wide, scaler, meta, "wide", m.wide_features, cfg.split.clip)
        deep = _normalized(input_deep, scaler, meta, "deep", m.deep_features, cfg.split.clip)
    else:
        inputs = keras.Input(shape=tuple(meta.input_shape), name="features")
        wide = deep = _normalized(inputs, scaler, meta, "input", None, cfg.split.clip)
    hidden = deep
    for i, units in enumerate(layer_sizes(m.n_hidden, m.n_neurons)):
        hidden = keras.layers.Dense(
            units, activation=m.activation, kernel_initializer=m.kernel_initializer, name=f"hidden_{i + 1}"
        )(hidden)
        if m.dropout > 0:
            hidden = keras.layers.Dropout(m.dropout, name=f"dropout_{i + 1}")(hidden)
    concat = keras.layers.Concatenate(name="concat")([wide, hidden])
    output = keras.layers.Dense(head.units, activation=head.activation, name="output")(concat)
    if not m.aux_output:
        return keras.Model(inputs=inputs, outputs=output, name="wide_deep")
    aux = keras.layers.Dense(head.units, activation=head.activation, name="aux_output")(hidden)
    return keras.Model(inputs=inputs, outputs={"output": output, "aux_output": aux}, name="wide_deep")
