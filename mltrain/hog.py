"""HOG features of an image and the logistic regression on them: the classical part of a hybrid
ensemble (``mltrain.hybrid``) and the reference ``mltrain.lab.baselines`` scores.

``hog`` computes the features in NumPy, ``hog_graph`` the same in TensorFlow for the served graph;
``fit_linear`` fits one logistic regression per finding and returns it as a linear map on the raw
features, which both the NumPy and the served scoring apply.
"""

import numpy as np

CELL = 8  # pixels per HOG cell side
BINS = 9  # unsigned orientations over 0..180 degrees
# Logistic regression C, chosen on validation: many features (HOG) want the low end, few the high one.
STRENGTHS = (0.000003, 0.00001, 0.00003, 0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1)


BLOCK = 512  # images whose float temporaries are held at once


def hog(pixels, cell=CELL, bins=BINS):
    """HOG descriptors of uint8 ``pixels`` [N, S, S] (memory-mapped arrays too): gradient-orientation
    histograms per cell, L2-Hys normalised over 2x2-cell blocks (Dalal and Triggs). Returns float32
    [N, features]. Computed ``BLOCK`` images at a time, so only the features grow with N."""
    blocks = [_hog_block(pixels[start : start + BLOCK], cell, bins) for start in range(0, max(len(pixels), 1), BLOCK)]
    return np.concatenate(blocks) if len(blocks) > 1 else blocks[0]


def _hog_block(pixels, cell, bins):
    images = np.asarray(pixels, dtype=np.float32)
    gy, gx = np.gradient(images, axis=(1, 2))
    magnitude = np.hypot(gx, gy)
    orientation = np.rad2deg(np.arctan2(gy, gx)) % 180.0
    count, size = images.shape[0], images.shape[1] // cell * cell
    cells = size // cell
    magnitude, orientation = magnitude[:, :size, :size], orientation[:, :size, :size]
    which = np.minimum((orientation / (180.0 / bins)).astype(int), bins - 1)
    histograms = np.zeros((count, cells, cells, bins), dtype=np.float32)
    for b in range(bins):
        weighted = np.where(which == b, magnitude, 0.0)
        histograms[..., b] = weighted.reshape(count, cells, cell, cells, cell).sum(axis=(2, 4))
    blocks = np.concatenate(
        [histograms[:, i : i + cells - 1, j : j + cells - 1] for i in (0, 1) for j in (0, 1)], axis=-1
    )  # [N, cells-1, cells-1, 4 * bins]
    blocks /= np.sqrt((blocks**2).sum(axis=-1, keepdims=True) + 1e-6)
    blocks = np.minimum(blocks, 0.2)
    blocks /= np.sqrt((blocks**2).sum(axis=-1, keepdims=True) + 1e-6)
    return blocks.reshape(count, -1)


def hog_graph(images, cell=CELL, bins=BINS):
    """``hog`` in TensorFlow for the served graph: float32 ``images`` [N, S, S, 1] -> [N, F].

    The orientation bin is found without atan2: the gradient is turned into the upper half-plane
    (unsigned orientation) and compared with each bin's lower edge by the sign of a cross product.
    """
    import tensorflow as tf

    x = images[..., 0]
    size = x.shape[1] // cell * cell
    cells = size // cell
    # np.gradient: central differences inside, one-sided at the borders.
    gy = tf.concat([x[:, 1:2] - x[:, 0:1], (x[:, 2:] - x[:, :-2]) / 2, x[:, -1:] - x[:, -2:-1]], axis=1)
    gx = tf.concat([x[:, :, 1:2] - x[:, :, 0:1], (x[:, :, 2:] - x[:, :, :-2]) / 2, x[:, :, -1:] - x[:, :, -2:-1]], axis=2)
    gy, gx = gy[:, :size, :size], gx[:, :size, :size]
    magnitude = tf.sqrt(gx * gx + gy * gy)
    flip = tf.logical_or(gy < 0, tf.logical_and(gy == 0, gx < 0))
    gx, gy = tf.where(flip, -gx, gx), tf.where(flip, -gy, gy)
    which = tf.zeros_like(x[:, :size, :size])
    for edge in range(1, bins):
        angle = np.deg2rad(edge * 180.0 / bins)
        which += tf.cast(np.cos(angle) * gy - np.sin(angle) * gx >= 0, tf.float32)
    histograms = []
    for b in range(bins):
        weighted = tf.where(tf.equal(which, float(b)), magnitude, tf.zeros_like(magnitude))
        histograms.append(tf.reduce_sum(tf.reshape(weighted, (-1, cells, cell, cells, cell)), axis=(2, 4)))
    histograms = tf.stack(histograms, axis=-1)
    blocks = tf.concat(
        [histograms[:, i : i + cells - 1, j : j + cells - 1] for i in (0, 1) for j in (0, 1)], axis=-1
    )
    blocks = blocks / tf.sqrt(tf.reduce_sum(blocks * blocks, axis=-1, keepdims=True) + 1e-6)
    blocks = tf.minimum(blocks, 0.2)
    blocks = blocks / tf.sqrt(tf.reduce_sum(blocks * blocks, axis=-1, keepdims=True) + 1e-6)
    return tf.reshape(blocks, (-1, (cells - 1) * (cells - 1) * 4 * bins))


def fit_linear(features, labels, strength):
    """One balanced logistic regression per finding on standardised ``features``, as a linear map
    on the raw features: ``(weights [F, K], biases [K])`` whose ``features @ weights + biases`` are the
    logits. A finding with one class in ``labels`` gets zero weights (probability 0.5)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    features = np.asarray(features, dtype=np.float64)
    weights = np.zeros((features.shape[1], labels.shape[1]))
    biases = np.zeros(labels.shape[1])
    scaler = StandardScaler().fit(features)
    standardised = scaler.transform(features)
    for finding in range(labels.shape[1]):
        if labels[:, finding].min() == labels[:, finding].max():
            continue
        model = LogisticRegression(C=strength, class_weight="balanced", max_iter=3000)
        model.fit(standardised, labels[:, finding])
        # (x - mean) / scale . w + b  ==  x . (w / scale) + (b - mean / scale . w)
        weights[:, finding] = model.coef_[0] / scaler.scale_
        biases[finding] = model.intercept_[0] - np.dot(scaler.mean_ / scaler.scale_, model.coef_[0])
    return weights, biases


def fit_predict(features, labels, scored, strength):
    """Probabilities for ``scored`` from ``fit_linear`` on ``features``."""
    weights, biases = fit_linear(features, labels, strength)
    return 1.0 / (1.0 + np.exp(-(np.asarray(scored, dtype=np.float64) @ weights + biases)))


def choose_strength(data_dir, stream=None, splits=None, features=None):
    """``(strength, {strength: validation mean AUROC})``: the regularisation that scores best on the
    validation split when fitted on the training split. ``splits`` and their ``features`` (default
    HOG), when the caller has them already, save loading and computing them again."""
    from . import dataset
    from .metrics import mean_auroc, per_finding_auroc

    splits = splits or {name: dataset.load_split(data_dir, name) for name in ("train", "val")}
    features = features or {name: hog(splits[name].pixels) for name in ("train", "val")}
    labels = {name: np.asarray(splits[name].labels) for name in ("train", "val")}
    by_strength = {}
    for strength in STRENGTHS:
        scores = fit_predict(features["train"], labels["train"], features["val"], strength)
        by_strength[strength] = mean_auroc(per_finding_auroc(labels["val"], scores))
        if stream:
            stream.write(f"C={strength}: validation mean AUROC {by_strength[strength]:.3f}\n")
    return max(by_strength, key=by_strength.get), by_strength
