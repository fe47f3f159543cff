"""The MobileNet networks Dispredo trains, their losses and their training-time augmentation.

Every network takes the uint8 pixels of ``dispredo_core.imaging.to_model_pixels`` as float32
[N, S, S, 1] in 0..255 and normalises them itself (``normalise`` layer), so the exported
serving model takes the same raw pixels. Layers are named so export can take the network apart:

    normalise -> backbone (keras.applications.MobileNet, no top) -> pool -> dropout -> head

``features`` (the backbone's last conv map) times the ``head`` kernel is the class activation map.
Training fits the network behind augmentation layers (``build_training_model``) that act only in
training; the network alone is saved and exported. Training code uses ``keras.ops`` only, so it
runs on any Keras backend; export (tf2onnx) needs TensorFlow.
"""

import math
from pathlib import Path

import keras
import numpy as np

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
    if config.normalise == "image":
        x = StandardiseImage(name="normalise")(image)
    else:
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


@keras.saving.register_keras_serializable(package="dispredo")
class StandardiseImage(keras.layers.Layer):
    """Each image to zero mean and unit spread over its own pixels: exposure and contrast, which
    differ between X-ray machines and between the sample's sources, are taken out before the network
    sees the image. Part of the served graph."""

    def call(self, images):
        ops = keras.ops
        mean = ops.mean(images, axis=(1, 2, 3), keepdims=True)
        spread = ops.std(images, axis=(1, 2, 3), keepdims=True)
        return (images - mean) / ops.maximum(spread, 1.0)  # a blank image stays blank, not 0/0

    def compute_output_shape(self, input_shape):
        return input_shape


def features_and_logits(model, images):
    """The backbone's last conv map and the head's logits (before its sigmoid) for ``images`` (inference)."""
    x = model.get_layer("normalise")(images)
    features = model.get_layer("backbone")(x, training=False)
    pooled = model.get_layer("pool")(features)
    head = model.get_layer("head")
    return features, keras.ops.matmul(pooled, head.kernel) + head.bias


def features_and_probabilities(model, images):
    """The backbone's last conv map and the sigmoid outputs of ``model`` for ``images`` (inference)."""
    features, logits = features_and_logits(model, images)
    return features, keras.ops.sigmoid(logits)


def class_activation_maps(model, features):
    """Per-unit CAM: ``features`` [N, h, w, C] times the head kernel [C, K] (no bias) -> [N, h, w, K]."""
    import tensorflow as tf

    kernel = model.get_layer("head").kernel
    return tf.einsum("nhwc,ck->nhwk", features, tf.cast(kernel, features.dtype))


@keras.saving.register_keras_serializable(package="dispredo")
class WeightedBinaryCrossentropy(keras.losses.Loss):
    """Binary cross-entropy with a weight per finding on the positive term (class weights)."""

    def __init__(self, positive_weights, name="weighted_binary_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.positive_weights = [float(w) for w in positive_weights]

    def call(self, y_true, y_pred):
        ops = keras.ops
        y_true = ops.cast(y_true, y_pred.dtype)
        weights = ops.convert_to_tensor(self.positive_weights, dtype=y_pred.dtype)
        epsilon = keras.backend.epsilon()
        y_pred = ops.clip(y_pred, epsilon, 1.0 - epsilon)
        loss = -(weights * y_true * ops.log(y_pred) + (1.0 - y_true) * ops.log(1.0 - y_pred))
        return ops.mean(loss, axis=-1)

    def get_config(self):
        return {**super().get_config(), "positive_weights": self.positive_weights}


def positive_weights(labels, power=0.5, cap=20.0):
    """Per-finding weight of positives: (negatives / positives) ** power, capped; 1 where none."""
    labels = np.asarray(labels, dtype=np.float64)
    positives = labels.sum(axis=0)
    negatives = len(labels) - positives
    ratio = np.where(positives > 0, negatives / np.maximum(positives, 1.0), 1.0)
    return np.minimum(np.maximum(ratio, 1.0) ** power, cap)


@keras.saving.register_keras_serializable(package="dispredo")
class RandomDegrade(keras.layers.Layer):
    """In training only, blur a random ``rate`` share of images by resizing them down to a random
    fraction of their side (between ``min_scale`` and 1) and back, so that sharpness cannot stand in
    for the image source (the NIH sample mixes a blurry 64 px source with sharper ones). Identity at
    inference.

    The fractions come from a fixed set of ``steps`` so every shape is static (XLA, ONNX).
    """

    def __init__(self, rate, min_scale=0.35, steps=3, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.min_scale, self.steps, self.seed = float(rate), float(min_scale), int(steps), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def scales(self):
        return [float(s) for s in np.linspace(self.min_scale, 1.0, self.steps + 1)[:-1]]

    def call(self, images, training=False):
        if not training or not self.rate:
            return images
        ops = keras.ops
        size = images.shape[1]
        versions = [images]
        for scale in self.scales():
            small = max(8, int(round(size * scale)))
            down = ops.image.resize(images, (small, small), interpolation="bilinear", antialias=True)
            versions.append(ops.image.resize(down, (size, size), interpolation="bilinear"))
        count = ops.shape(images)[0]
        blurred = keras.random.uniform((count,), seed=self.seed_generator) < self.rate
        level = keras.random.randint((count,), 1, len(versions), seed=self.seed_generator)
        choice = ops.one_hot(ops.where(blurred, level, 0), len(versions), dtype=images.dtype)
        return ops.einsum("vnhwc,nv->nhwc", ops.stack(versions, axis=0), choice)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "rate": self.rate,
            "min_scale": self.min_scale,
            "steps": self.steps,
            "seed": self.seed,
        }


def augmentation_layers(config):
    """Training-time augmentation on raw-pixel batches: random blur (``config.degrade``), then small
    shifts, rotations and zoom (``config.augment``). Active only in training; never exported."""
    seed = config.seed
    layers = []
    if config.degrade:
        layers.append(RandomDegrade(config.degrade, config.degrade_min_scale, seed=seed + 3, name="degrade"))
    if config.augment:
        layers += [
            keras.layers.RandomTranslation(0.06, 0.06, fill_mode="nearest", seed=seed, name="shift"),
            keras.layers.RandomRotation(0.03, fill_mode="nearest", seed=seed + 1, name="rotate"),
            keras.layers.RandomZoom((-0.08, 0.08), fill_mode="nearest", seed=seed + 2, name="zoom"),
        ]
    return layers


def build_training_model(network, config):
    """``network`` behind the augmentation layers: what ``fit`` trains. The weights are ``network``'s,
    so ``network`` alone is what is saved and exported."""
    size = network.input_shape[1]
    image = keras.Input((size, size, 1), name="image")
    x = image
    for layer in augmentation_layers(config):
        x = layer(x)
    return keras.Model(image, network(x), name="training")


def predict(networks, pixels, batch_size=128):
    """Mean sigmoid outputs of ``networks`` (Keras, inference mode) for uint8 ``pixels`` [N, S, S]
    (an array, a memory map or ``mltrain.rows.Rows``), read a batch at a time.

    The last batch is padded to the full batch size so a compiling backend builds one program.
    """
    count = len(pixels)

    class Images(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)

        def __len__(self):
            return math.ceil(count / batch_size)

        def __getitem__(self, index):
            chunk = np.asarray(pixels[index * batch_size : (index + 1) * batch_size], dtype=np.float32)
            padded = np.zeros((batch_size, *chunk.shape[1:], 1), dtype=np.float32)
            padded[: len(chunk), ..., 0] = chunk
            return (padded,)

    return np.mean([network.predict(Images(), verbose=0)[:count] for network in networks], axis=0)


def load_networks(directory, files):
    """The Keras networks saved as ``files`` in ``directory``, in that order (without their optimiser)."""
    return [keras.models.load_model(Path(directory) / name, compile=False) for name in files]
