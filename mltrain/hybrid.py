"""A cross-validated MobileNet ensemble joined with HOG + logistic regression in one served graph
(``manage.py addhog``).

On the sample's 1,413 train + val images the from-scratch networks and the classical baseline
score about the same out of fold, but they rank images differently (one sees texture learned end
to end, the other fixed edge statistics), so their mean does better than either. Per fold, the
member network is joined by a logistic regression on HOG features fitted on the same images, and
the member's score for a finding is

    r = WEIGHT * (z_cnn - centre_cnn) / scale_cnn + (1 - WEIGHT) * (z_hog - centre_hog) / scale_hog

with each logit standardised by its mean and spread on the fold the member left out (no labels),
so neither part dominates by scale (and the network's share 0 where it learnt nothing:
``network_weights``). The members are then calibrated together as a plain ensemble
is (``calibration.fit_ensemble``), thresholds come from the calibrated out-of-fold scores, and the
served graph computes HOG itself (``hog_graph``), so the web app still runs one ONNX file. The
class activation maps are the networks' alone: the heat map shows where the network looked, not
the HOG part.
"""

import dataclasses
from pathlib import Path

import numpy as np

from diagnosis.artefact import read_metadata

from . import baselines, calibration
from .metrics import mean_auroc, per_finding_auroc
from .recalibration import copy_config
from .training import (
    TrainingError,
    fold_means,
    load_keras_models,
    member_fold,
    out_of_fold,
    pooled_folds,
    selection_of,
    write_artefact,
)

# The networks' share of a member's score: equal, fixed before any figure was seen, never tuned.
WEIGHT = 0.5
HOG_FILE = "hog.npz"


@dataclasses.dataclass
class HogMember:
    """What one member adds to its network: the logistic regression on HOG features (``weights``
    [F, 14], ``biases`` [14], on the raw features), both parts' standardisers on the held-out fold,
    and the calibration ``sigmoid(slopes * r + intercepts)`` of the joint score ``r``."""

    weights: np.ndarray
    biases: np.ndarray
    hog_centre: np.ndarray
    hog_scale: np.ndarray
    cnn_centre: np.ndarray
    cnn_scale: np.ndarray
    cnn_weight: np.ndarray
    slopes: np.ndarray = None
    intercepts: np.ndarray = None

    def combine(self, cnn_logits, hog_logits):
        """The member's raw score ``r`` (before calibration) from both parts' logits."""
        cnn = (cnn_logits - self.cnn_centre) / self.cnn_scale
        hog = (hog_logits - self.hog_centre) / self.hog_scale
        return self.cnn_weight * cnn + (1 - WEIGHT) * hog


def save_members(path, members):
    arrays = {f"{field.name}_{index}": getattr(member, field.name)
              for index, member in enumerate(members) for field in dataclasses.fields(HogMember)}
    np.savez(path, count=len(members), **arrays)


def load_members(path):
    with np.load(path) as stored:
        return [
            HogMember(**{field.name: stored[f"{field.name}_{index}"] for field in dataclasses.fields(HogMember)})
            for index in range(int(stored["count"]))
        ]


def network_logits(network, pixels, batch_size=128):
    """Logits of ``network``'s sigmoid head for ``pixels`` [N, S, S], taken before the sigmoid as the
    served graph takes them (recovering them from float32 probabilities loses precision near 0 and 1)."""
    from .networks import features_and_logits

    logits = [
        np.asarray(features_and_logits(network, np.asarray(pixels[start : start + batch_size], np.float32)[..., None])[1])
        for start in range(0, len(pixels), batch_size)
    ]
    return np.concatenate(logits).astype(np.float64)


def fit(networks, pooled, strength):
    """HOG members for the calibrated ensemble ``networks`` on ``pooled`` (``training.pooled_folds``).

    Returns ``(hog_members, selection)``: per member its calibrated ``HogMember``, and the selection
    dict ``write_artefact`` takes, with the out-of-fold mean AUROC of each part alone in ``parts``.
    """
    labels, fold_of, folds = pooled["labels"], pooled["fold_of"], pooled["folds"]
    if len(networks) % folds:
        raise TrainingError(f"An ensemble of {len(networks)} networks does not cover {folds} folds evenly.")
    features = baselines.hog(pooled["pixels"])
    masks = [fold_of == fold for fold in range(folds)]
    linear = [baselines.fit_linear(features[~mask], labels[~mask], strength) for mask in masks]
    member_folds = [member_fold(index, folds) for index in range(len(networks))]
    members, raw, parts = [], [], {"networks": [], "hog": []}
    for network, fold in zip(networks, member_folds):
        weights, biases = linear[fold]
        cnn_logits = network_logits(network, pooled["pixels"][masks[fold]])
        hog_logits = features[masks[fold]] @ weights + biases
        member = HogMember(
            weights, biases, *calibration.logit_standardiser(hog_logits), *calibration.logit_standardiser(cnn_logits),
            network_weights(cnn_logits),
        )
        members.append(member)
        raw.append(calibration.sigmoid(member.combine(cnn_logits, hog_logits)))
        parts["networks"].append(cnn_logits)
        parts["hog"].append(hog_logits)
    heads, calibrated, fitted = calibration.fit_ensemble(raw, [labels[mask] for mask in masks], member_folds)
    for member, (slopes, intercepts) in zip(members, heads):
        member.slopes, member.intercepts = np.asarray(slopes), np.asarray(intercepts)
    uncalibrated = out_of_fold(pooled, fold_means(raw, member_folds, folds))
    selection = selection_of(pooled, out_of_fold(pooled, calibrated), uncalibrated, fitted)
    selection["parts"] = {
        f"{part}_out_of_fold_mean_auroc": mean_auroc(
            per_finding_auroc(labels, out_of_fold(pooled, fold_means(scores, member_folds, folds)))
        )
        for part, scores in parts.items()
    }
    return members, selection


def network_weights(cnn_logits):
    """The network's share of each finding's score: ``WEIGHT``, or 0 where its logits barely move on
    the held-out fold (a member stopped before it learnt anything), whose float noise standardising
    would blow up."""
    return np.where(np.asarray(cnn_logits).std(axis=0) > calibration.MIN_SCALE, WEIGHT, 0.0)


def served_probabilities(networks, members, pixels):
    """What the served graph gives for ``pixels`` [N, S, S], computed in NumPy: the check on the export."""
    features = baselines.hog(pixels)
    outputs = []
    for network, member in zip(networks, members):
        r = member.combine(network_logits(network, pixels), features @ member.weights + member.biases)
        outputs.append(calibration.sigmoid(member.slopes * r + member.intercepts))
    return np.mean(outputs, axis=0)


def hog_graph(images, cell=baselines.CELL, bins=baselines.BINS):
    """``baselines.hog`` in TensorFlow for the served graph: float32 ``images`` [N, S, S, 1] -> [N, F].

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


def member_serving_function(network, member, size):
    """A tf.function image -> {"probabilities", "cams"} for one member network and its HOG part."""
    import tensorflow as tf

    from .export import INPUT_NAME
    from .networks import class_activation_maps, features_and_logits

    def serve(image):
        # Constants made inside the trace become graph constants; made outside, tf2onnx takes
        # them for extra inputs.
        constant = HogMember(**{field.name: tf.constant(np.asarray(getattr(member, field.name)), tf.float32)
                                for field in dataclasses.fields(HogMember)})
        features, cnn_logits = features_and_logits(network, image)
        r = constant.combine(cnn_logits, tf.matmul(hog_graph(image), constant.weights) + constant.biases)
        return {
            "probabilities": tf.identity(tf.sigmoid(constant.slopes * r + constant.intercepts), name="probabilities"),
            "cams": tf.identity(class_activation_maps(network, features), name="cams"),
        }

    spec = tf.TensorSpec((None, size, size, 1), tf.float32, name=INPUT_NAME)
    return tf.function(serve, input_signature=(spec,), autograph=False), spec


def add_hog(directory, name, data_dir=None, strength=None, activate=False, stream=None):
    """A copy of the calibrated ensemble artefact at ``directory`` with a HOG member per fold,
    registered as ``name``. ``strength`` (logistic regression C) defaults to the one the baseline
    chooses on the validation split."""
    directory = Path(directory)
    metadata = read_metadata(directory)
    recorded = metadata.get("config", {})
    if metadata.get("hog"):
        raise TrainingError(f"{metadata['name']} already has HOG members.")
    if recorded.get("strategy") != "multilabel" or recorded.get("folds", 1) < 2 or not recorded.get("calibrate"):
        raise TrainingError(
            f"{metadata['name']} is not a calibrated cross-validated multilabel ensemble: HOG members "
            "are fitted on the folds its networks left out (train --strategy multilabel --folds K)."
        )
    config, manifest = copy_config(metadata, name, data_dir, activate)
    if strength is None:
        strength, _ = baselines.choose_strength(config.data_dir, stream=stream)
    networks = load_keras_models(directory, metadata)
    pooled = pooled_folds(config.data_dir, config.folds, config.seed)
    members, selection = fit(networks, pooled, strength)
    hybrid = {
        "members": members,
        "description": {
            "file": HOG_FILE,
            "from": metadata["name"],
            "strength": strength,
            "network_weight": WEIGHT,
            "cell": baselines.CELL,
            "bins": baselines.BINS,
            **selection.pop("parts"),
        },
    }
    training = {**metadata["metrics"]["training"], "hog_added_to": metadata["name"]}
    return write_artefact(config, networks, training, selection, manifest, config.data_dir, hybrid=hybrid)
