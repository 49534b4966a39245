"""The Subclassing API WideAndDeepModel of the book, made saveable: `get_config` carries the
constructor arguments (scaler statistics included), and registration lets Keras rebuild it
in safe mode.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from annlab.config.schema import Config
from annlab.data.dataset import DatasetMeta
from annlab.models.heads import Head
from annlab.models.mlp import layer_sizes


@keras.saving.register_keras_serializable(package="annlab")
class WideAndDeepModel(keras.Model):
    """Two inputs (`wide`, `deep`), a deep path of Dense layers (each followed by dropout when
    `dropout` > 0), and a main output plus, with `aux_output`, an auxiliary one."""

    def __init__(
        self,
        units: list[int],
        activation: str = "relu",
        n_outputs: int = 1,
        output_activation: str | None = None,
        wide_stats: dict[str, list] | None = None,
        deep_stats: dict[str, list] | None = None,
        kernel_initializer: str = "glorot_uniform",
        dropout: float = 0.0,
        aux_output: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.units = list(units)
        self.activation = activation
        self.n_outputs = n_outputs
        self.output_activation = output_activation
        self.wide_stats = wide_stats
        self.deep_stats = deep_stats
        self.kernel_initializer = kernel_initializer
        self.dropout = dropout
        self.has_aux_output = aux_output
        self.norm_wide = self._norm(wide_stats, "wide_scaling")
        self.norm_deep = self._norm(deep_stats, "deep_scaling")
        self.hidden = [
            keras.layers.Dense(
                u, activation=activation, kernel_initializer=kernel_initializer, name=f"hidden_{i + 1}"
            )
            for i, u in enumerate(self.units)
        ]
        self.dropouts = (
            [keras.layers.Dropout(dropout, name=f"dropout_{i + 1}") for i in range(len(self.units))]
            if dropout > 0
            else []
        )
        self.concat = keras.layers.Concatenate(name="concat")
        self.main_output = keras.layers.Dense(n_outputs, activation=output_activation, name="output")
        self.aux_output = (
            keras.layers.Dense(n_outputs, activation=output_activation, name="aux_output")
            if aux_output
            else None
        )

    @staticmethod
    def _norm(stats: dict[str, list] | None, name: str):
        if not stats:
            return None
        layer = keras.layers.Normalization(
            mean=np.asarray(stats["mean"]), variance=np.asarray(stats["variance"]), name=name
        )
        # Build eagerly: built inside the model's first (traced) call, the layer's constant
        # statistics would belong to a scratch graph.
        layer.build((None, len(stats["mean"])))
        return layer

    def call(self, inputs, training=None):
        wide, deep = inputs["wide"], inputs["deep"]
        if self.norm_wide is not None:
            wide = self.norm_wide(wide)
        if self.norm_deep is not None:
            deep = self.norm_deep(deep)
        hidden = deep
        for i, layer in enumerate(self.hidden):
            hidden = layer(hidden)
            if self.dropouts:
                hidden = self.dropouts[i](hidden, training=training)
        main = self.main_output(self.concat([wide, hidden]))
        if self.aux_output is None:
            return main
        return {"output": main, "aux_output": self.aux_output(hidden)}

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation,
            "n_outputs": self.n_outputs,
            "output_activation": self.output_activation,
            "wide_stats": self.wide_stats,
            "deep_stats": self.deep_stats,
            "kernel_initializer": self.kernel_initializer,
            "dropout": self.dropout,
            "aux_output": self.has_aux_output,
        }


def _stats(scaler: dict[str, Any], features: list[int]) -> dict[str, list] | None:
    if scaler.get("kind") == "standard":
        return {
            "mean": [scaler["mean"][i] for i in features],
            "variance": [scaler["variance"][i] for i in features],
        }
    if scaler.get("kind") == "rescale":
        d = float(scaler["divisor"])
        return {"mean": [0.0] * len(features), "variance": [d * d] * len(features)}
    return None


def build_subclassed(cfg: Config, meta: DatasetMeta, scaler: dict[str, Any], head: Head):
    m = cfg.model
    wide, deep = m.wide_features or [], m.deep_features or []
    model = WideAndDeepModel(
        units=layer_sizes(m.n_hidden, m.n_neurons),
        activation=m.activation,
        n_outputs=head.units,
        output_activation=head.activation,
        wide_stats=_stats(scaler, wide),
        deep_stats=_stats(scaler, deep),
        kernel_initializer=m.kernel_initializer,
        dropout=m.dropout,
        aux_output=m.aux_output,
        name="wide_deep_subclassed",
    )
    model({"wide": np.zeros((1, len(wide)), "float32"), "deep": np.zeros((1, len(deep)), "float32")})
    return model
