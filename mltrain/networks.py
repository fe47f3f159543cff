"""The MobileNet networks Dispredo trains, their losses and their training-time augmentation.

Every network takes the uint8 pixels of ``diagnosis.imaging.to_model_pixels`` as float32
[N, S, S, 1] in 0..255 and normalises them itself (``normalise`` layer), so the exported
serving model takes the same raw pixels. Layers are named so export can take the network apart:

    normalise -> backbone (keras.applications.MobileNet, no top) -> pool -> dropout -> head

``features`` (the backbone's last conv map) times the ``head`` kernel is the class activation map.
"""

import keras
import numpy as np
import tensorflow as tf

# MobileNet expects inputs in [-1, 1].
PIXEL_SCALE = 1.0 / 127.5
PIXEL_OFFSET = -1.0


def build_model(config, outputs=None):
    """A MobileNet for ``config`` with ``outputs`` sigmoid units (14 for multilabel, 1 per finding)."""
    if outputs is None:
        outputs = 1 if config.strategy == "per-finding" else 14
    size = config.size
    regulariser = keras.regularizers.L2(config.weight_decay) if config.weight_decay else None
    image = keras.Input((size, size, 1), name="image")
    x = keras.layers.Rescaling(PIXEL_SCALE, offset=PIXEL_OFFSET, name="normalise")(image)
    backbone = keras.applications.MobileNet(
        input_shape=(size, size, 1),
        alpha=config.alpha,
        include_top=False,
        weights=None,
        dropout=0.0,
        name="backbone",
    )
    features = backbone(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    x = keras.layers.Dropout(config.dropout, name="dropout")(x)
    probabilities = keras.layers.Dense(
        outputs, activation="sigmoid", kernel_regularizer=regulariser, name="head"
    )(x)
    return keras.Model(image, probabilities, name=f"dispredo_mobilenet_{outputs}")


def features_and_probabilities(model, images):
    """The backbone's last conv map and the sigmoid outputs of ``model`` for ``images`` (inference)."""
    x = model.get_layer("normalise")(images)
    features = model.get_layer("backbone")(x, training=False)
    pooled = model.get_layer("pool")(features)
    probabilities = model.get_layer("head")(pooled)
    return features, probabilities


def class_activation_maps(model, features):
    """Per-unit CAM: ``features`` [N, h, w, C] times the head kernel [C, K] (no bias) -> [N, h, w, K]."""
    kernel = model.get_layer("head").kernel
    return tf.einsum("nhwc,ck->nhwk", features, tf.cast(kernel, features.dtype))


@keras.saving.register_keras_serializable(package="dispredo")
class WeightedBinaryCrossentropy(keras.losses.Loss):
    """Binary cross-entropy with a weight per finding on the positive term (class weights)."""

    def __init__(self, positive_weights, name="weighted_binary_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.positive_weights = [float(w) for w in positive_weights]

    def call(self, y_true, y_pred):
        y_true = tf.cast(y_true, y_pred.dtype)
        weights = tf.constant(self.positive_weights, dtype=y_pred.dtype)
        y_pred = tf.clip_by_value(y_pred, keras.backend.epsilon(), 1.0 - keras.backend.epsilon())
        loss = -(weights * y_true * tf.math.log(y_pred) + (1.0 - y_true) * tf.math.log(1.0 - y_pred))
        return tf.reduce_mean(loss, axis=-1)

    def get_config(self):
        return {**super().get_config(), "positive_weights": self.positive_weights}


def positive_weights(labels, power=0.5, cap=20.0):
    """Per-finding weight of positives: (negatives / positives) ** power, capped; 1 where none."""
    labels = np.asarray(labels, dtype=np.float64)
    positives = labels.sum(axis=0)
    negatives = len(labels) - positives
    ratio = np.where(positives > 0, negatives / np.maximum(positives, 1.0), 1.0)
    return np.minimum(np.maximum(ratio, 1.0) ** power, cap)


def build_augmenter(config):
    """Training-time augmentation on raw-pixel batches: small shifts, rotations and zoom.

    Applied in the tf.data pipeline, never saved with the model.
    """
    seed = config.seed
    return keras.Sequential(
        [
            keras.layers.RandomTranslation(0.06, 0.06, fill_mode="nearest", seed=seed),
            keras.layers.RandomRotation(0.03, fill_mode="nearest", seed=seed + 1),
            keras.layers.RandomZoom((-0.08, 0.08), fill_mode="nearest", seed=seed + 2),
        ],
        name="augment",
    )


def degrade_resolution(images, probability, min_scale, seed):
    """Blur a random ``probability`` share of a batch by downscaling to a random fraction (>= ``min_scale``)
    of its size and back, so that sharpness cannot stand in for the 64 px source (see the data README).

    ``images``: float32 [N, S, S, 1]; ``seed``: a stateless seed pair (tensor of 2 ints).
    """
    size = tf.shape(images)[1]
    count = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(seed, 2)
    scale = tf.random.stateless_uniform([], seeds[0], min_scale, 1.0)
    small = tf.maximum(tf.cast(tf.round(tf.cast(size, tf.float32) * scale), tf.int32), 8)
    blurred = tf.image.resize(
        tf.image.resize(images, [small, small], method="area"), [size, size], method="bilinear"
    )
    chosen = tf.random.stateless_uniform([count, 1, 1, 1], seeds[1]) < probability
    return tf.where(chosen, blurred, images)
