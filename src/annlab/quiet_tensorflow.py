"""Importing TensorFlow without burying the user's one line under its start-up messages."""

from __future__ import annotations

import os
import sys


def quiet_tensorflow() -> None:
    """Import TensorFlow with its C++ start-up lines (oneDNN, CPU features, absl) silenced.

    TensorFlow 2.21 prints them to stderr at import whatever TF_CPP_MIN_LOG_LEVEL says; they
    would bury the one line a user needs to read. Python errors are unaffected: they are raised
    after stderr is restored.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
