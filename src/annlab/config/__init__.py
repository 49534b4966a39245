"""Typed, validated configuration: every stage works from one `Config`."""

from annlab.config.loading import compose_config, load_params
from annlab.config.schema import Config, validate

__all__ = ["Config", "compose_config", "load_params", "validate"]
