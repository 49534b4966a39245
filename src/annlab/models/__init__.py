"""Model builders: the chapter's Sequential, Functional and Subclassing APIs, and a baseline."""

from annlab.models.build import build_model, model_inputs, model_targets

__all__ = ["build_model", "model_inputs", "model_targets"]
