"""The one exception type a user sees: a single line naming the setting or file and the fix."""

from __future__ import annotations


class AnnlabError(Exception):
    """A problem with the user's input (config, data file, model file, tracking server).

    Entry points print ``str(error)`` as one line and exit non-zero, so the message must say
    what was expected, what was received, and how to fix it, in the style of Keras' errors.
    """


class TrainingDiverged(AnnlabError):
    """The loss became NaN or infinite: training stopped and the run is marked FAILED."""
