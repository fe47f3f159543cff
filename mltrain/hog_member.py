"""One member of a hybrid ensemble: a network joined with a logistic regression on HOG features
fitted on the same fold (``mltrain.hybrid`` fits them). The member's score for a finding is

    r = w * (z_cnn - centre_cnn) / scale_cnn + (1 - WEIGHT) * (z_hog - centre_hog) / scale_hog

with each logit standardised by its mean and spread on the fold the member left out, so neither
part dominates by scale (``w`` is ``WEIGHT``, or 0 where the network learnt nothing:
``network_weights``), then calibrated as ``sigmoid(slopes * r + intercepts)``. The served graph
computes HOG itself (``hog.hog_graph``); the class activation maps are the network's alone.
"""

import dataclasses

import numpy as np

from diagnosis.serving import CAMS, INPUT_NAME, PROBABILITIES

from . import calibration
from .hog import hog, hog_graph

# The networks' share of a member's score: equal, fixed in advance, not tuned.
WEIGHT = 0.5


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


def network_weights(cnn_logits):
    """The network's share of each finding's score: ``WEIGHT``, or 0 where its logits barely move on
    the held-out fold (a member stopped before it learnt anything), whose float noise standardising
    would blow up."""
    return np.where(np.asarray(cnn_logits).std(axis=0) > calibration.MIN_SCALE, WEIGHT, 0.0)


def member_probabilities(network, member, pixels, features=None):
    """What the served graph gives for one member on ``pixels`` [N, S, S], computed in NumPy
    (``features``: their HOG, when the caller has it)."""
    features = hog(pixels) if features is None else features
    r = member.combine(network_logits(network, pixels), features @ member.weights + member.biases)
    return calibration.sigmoid(member.slopes * r + member.intercepts)


def served_probabilities(networks, members, pixels):
    """What the served graph of the whole ensemble gives for ``pixels``, in NumPy: the check on the export."""
    features = hog(pixels)
    return np.mean([member_probabilities(n, m, pixels, features) for n, m in zip(networks, members)], axis=0)


def member_serving_function(network, member, size):
    """A tf.function image -> {"probabilities", "cams"} for one member network and its HOG part."""
    import tensorflow as tf

    from .networks import class_activation_maps, features_and_logits

    def serve(image):
        # Constants made inside the trace become graph constants; made outside, tf2onnx takes
        # them for extra inputs.
        constant = HogMember(**{field.name: tf.constant(np.asarray(getattr(member, field.name)), tf.float32)
                                for field in dataclasses.fields(HogMember)})
        features, cnn_logits = features_and_logits(network, image)
        r = constant.combine(cnn_logits, tf.matmul(hog_graph(image), constant.weights) + constant.biases)
        return {
            PROBABILITIES: tf.identity(tf.sigmoid(constant.slopes * r + constant.intercepts), name=PROBABILITIES),
            CAMS: tf.identity(class_activation_maps(network, features), name=CAMS),
        }

    spec = tf.TensorSpec((None, size, size, 1), tf.float32, name=INPUT_NAME)
    return tf.function(serve, input_signature=(spec,), autograph=False), spec
