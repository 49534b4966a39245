"""Importing TensorFlow and Keras quietly and without what annlab never uses from them."""

from __future__ import annotations

import os
import sys

# Keras imports scikit-learn (for its scikit-learn wrappers), matplotlib.pyplot (for its
# image-gallery plot) and pandas (to accept DataFrames in fit / predict) whenever they are
# installed, and treats all three as optional (`try: import ... except ImportError`). annlab
# uses none of those parts (it feeds Keras NumPy arrays; the pyfunc loader converts a
# DataFrame first); skipping them takes ~1.7 s of CPU off every TensorFlow process that has
# not imported them yet. All three import normally afterwards. tests/test_pipeline.py pins this.
OPTIONAL_FOR_KERAS = ("sklearn", "matplotlib", "pandas")


def quiet_tensorflow() -> None:
    """Import TensorFlow and Keras with TensorFlow's C++ start-up lines (oneDNN, CPU features,
    absl) silenced, and without Keras' optional scikit-learn, matplotlib and pandas parts.

    TensorFlow 2.21 prints those lines to stderr at import whatever TF_CPP_MIN_LOG_LEVEL says;
    they would bury the one line a user needs to read. Python errors are unaffected: they are
    raised after stderr is restored. Call it before other threads start importing: while Keras
    imports, the optional modules are marked absent for the whole process.
    """
    if "keras" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    absent = [name for name in OPTIONAL_FOR_KERAS if name not in sys.modules]
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            sys.modules.update(dict.fromkeys(absent))  # `import sklearn` raises ImportError
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
    finally:
        for name in absent:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]
        os.dup2(saved, 2)
        os.close(saved)
