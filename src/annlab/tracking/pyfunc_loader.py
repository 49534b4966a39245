"""pyfunc loader for logged Keras models that contain annlab's own classes.

Keras rebuilds a registered custom class (the subclassed `WideAndDeepModel`) only once the
module registering it is imported, and MLflow's Keras loader imports nothing of ours. Such
models are logged with this module as their pyfunc `loader_module` (the Keras flavour itself
is unchanged): it imports the registrations, then defers to MLflow's Keras loader. Serving them
needs annlab installed, e.g. `mlflow models serve --env-manager local`.
"""

from __future__ import annotations


def _load_pyfunc(path: str):
    import annlab.models.subclassed  # noqa: F401  registers WideAndDeepModel with Keras
    from annlab.quiet_tensorflow import quiet_tensorflow

    quiet_tensorflow()
    from mlflow.keras.load import _load_pyfunc as load_keras_pyfunc

    return load_keras_pyfunc(path)
