"""Where a network trains: one device, or replicas on several (``manage.py train --distribute``).

Without ``--distribute`` TensorFlow's default strategy places the work itself (a GPU if it sees one).
With it, ``tf.distribute.MirroredStrategy`` keeps a copy of the network on every visible GPU, splits
each batch between them and adds up their gradients. ``--batch-size`` is the global batch: each of N
replicas gets ``batch_size / N`` images per step, so a run takes the same steps on one GPU or on
several, and the batch size must divide by N. Batch-norm statistics are each replica's own.

``DISPREDO_DISTRIBUTE_DEVICES`` (comma-separated TensorFlow device names, e.g. ``/gpu:0,/gpu:2``,
or ``/cpu:0,/cpu:1`` for logical CPU devices) names the devices instead of every visible GPU.
With one device ``--distribute`` says so and trains there without replicas: what a single-device run
does, so a script with ``--distribute`` runs unchanged on a one-GPU machine. With none (no GPU is
visible, as when CUDA is not set up) it refuses rather than train on the CPU unasked.
"""

import os

from .config import TrainingError

DEVICES_VARIABLE = "DISPREDO_DISTRIBUTE_DEVICES"


class DistributionError(TrainingError):
    """``--distribute`` cannot place the replicas (no device, wrong backend, uneven batch)."""


def devices():
    """The devices ``--distribute`` spreads over: ``DISPREDO_DISTRIBUTE_DEVICES``, else every visible GPU."""
    import tensorflow as tf

    named = os.environ.get(DEVICES_VARIABLE, "")
    if named.strip():
        return [name.strip() for name in named.split(",") if name.strip()]
    return [device.name for device in tf.config.list_logical_devices("GPU")]


def strategy(distribute, batch_size, stream=None):
    """The ``tf.distribute`` strategy to build and fit under: the default one unless ``distribute``.

    Raises ``DistributionError`` when ``distribute`` finds no device, runs on another Keras backend,
    or ``batch_size`` does not divide among the replicas. ``stream`` gets one line saying where
    training runs."""
    import keras
    import tensorflow as tf

    if not distribute:
        return tf.distribute.get_strategy()
    if keras.backend.backend() != "tensorflow":
        raise DistributionError(
            f"--distribute needs Keras on TensorFlow (KERAS_BACKEND=tensorflow); this one runs on {keras.backend.backend()}."
        )
    chosen = devices()
    if not chosen:
        raise DistributionError(
            "--distribute found no GPU visible to TensorFlow (tf.config.list_physical_devices('GPU') is empty). "
            f"Check the CUDA installation, name devices in {DEVICES_VARIABLE}, or train without --distribute."
        )
    if len(chosen) == 1:
        if stream is not None:
            stream.write(f"--distribute: one device ({chosen[0]}), so training runs there without replicas.\n")
        return tf.distribute.OneDeviceStrategy(chosen[0])
    if batch_size % len(chosen):
        raise DistributionError(
            f"--batch-size {batch_size} does not divide among {len(chosen)} replicas; "
            f"give a multiple of {len(chosen)} (it is the global batch)."
        )
    mirrored = tf.distribute.MirroredStrategy(chosen)
    if stream is not None:
        stream.write(
            f"--distribute: {len(chosen)} replicas ({', '.join(chosen)}), "
            f"{batch_size // len(chosen)} images each per step.\n"
        )
    return mirrored

