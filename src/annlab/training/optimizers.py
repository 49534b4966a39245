"""Optimizer and learning-rate schedule from config."""

from __future__ import annotations

from annlab.config.schema import OptimizerConfig


def build_optimizer(cfg: OptimizerConfig):
    import keras

    rate = cfg.learning_rate
    if cfg.schedule == "exponential":
        rate = keras.optimizers.schedules.ExponentialDecay(cfg.learning_rate, cfg.decay_steps, cfg.decay_rate)
    elif cfg.schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, cfg.decay_steps)
    if cfg.name == "sgd":
        return keras.optimizers.SGD(learning_rate=rate, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.name == "adam":
        return keras.optimizers.Adam(learning_rate=rate)
    return keras.optimizers.RMSprop(learning_rate=rate, momentum=cfg.momentum)
