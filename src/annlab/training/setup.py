"""Process-wide TensorFlow settings that must happen before the first op: threads, seeds."""

from __future__ import annotations

from annlab.config.schema import TrainingConfig
from annlab.quiet_tensorflow import quiet_tensorflow


def configure_tensorflow(training: TrainingConfig, seed: int) -> None:
    """Threads per process (parallel sweeps must not fight for cores) and determinism."""
    quiet_tensorflow()
    import keras
    import tensorflow as tf

    try:
        if training.logical_cpu_devices:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * training.logical_cpu_devices
            )
        if training.intra_op_threads:
            tf.config.threading.set_intra_op_parallelism_threads(training.intra_op_threads)
        if training.inter_op_threads:
            tf.config.threading.set_inter_op_parallelism_threads(training.inter_op_threads)
    except RuntimeError:
        pass  # already initialised in this process (e.g. a second job in one worker)
    keras.utils.set_random_seed(seed)  # Python, NumPy and the backend
    if training.deterministic:
        tf.config.experimental.enable_op_determinism()
