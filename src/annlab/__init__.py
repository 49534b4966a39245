"""annlab: the Keras networks of Hands-On ML chapter 10 as a DVC + Hydra + MLflow pipeline."""

import os as _os

# TensorFlow's C++ start-up lines would bury the one line a user needs to read; they must be
# silenced before TensorFlow is first imported, wherever that happens. Users can override.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"
