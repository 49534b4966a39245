"""The one exception type a user sees: a single line naming the setting or file and the fix."""

from __future__ import annotations

import os

EXIT_USER_ERROR = 1


class AnnlabError(Exception):
    """A problem with the user's input (config, data file, model file, tracking server).

    Entry points print ``str(error)`` as one line and exit non-zero, so the message must say
    what was expected, what was received, and how to fix it, in the style of Keras' errors.
    """


class TrainingDiverged(AnnlabError):
    """The loss became NaN or infinite: training stopped and the run is marked FAILED."""


def debug_requested() -> bool:
    """Full tracebacks on request, with the variable Hydra users already know."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1" or os.environ.get("ANNLAB_DEBUG") == "1"
