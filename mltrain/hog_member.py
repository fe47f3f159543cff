"""One member of a hybrid ensemble (``HybridMember``, a ``members.Member``): a network joined with
a logistic regression on HOG features fitted on the same fold (``mltrain.hybrid`` fits them). The
member's score for a finding is

    r = w * (z_cnn - centre_cnn) / scale_cnn + (1 - WEIGHT) * (z_hog - centre_hog) / scale_hog

with each logit standardised by its mean and spread on the fold the member left out, so neither
part dominates by scale (``w`` is ``WEIGHT``, or 0 where the network learnt nothing:
``network_weights``), then calibrated as ``sigmoid(slopes * r + intercepts)``. The served graph
computes HOG itself (``hog.hog_graph``); the class activation maps are the network's alone.
"""

import dataclasses

import numpy as np

from dispredo_core.serving import CAMS, HOG_FILE, INPUT_NAME, PROBABILITIES

from . import calibration
from .hog import hog, hog_graph

# The networks' share of a member's score: equal, fixed in advance, not tuned.
WEIGHT = 0.5


@dataclasses.dataclass
class HogPart:
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


def load_parts(path):
    """The ``HogPart`` of each member, from the artefact's ``HOG_FILE`` at ``path``."""
    with np.load(path) as stored:
        return [
            HogPart(**{field.name: stored[f"{field.name}_{index}"] for field in dataclasses.fields(HogPart)})
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


class HybridMember:
    """A network joined with its ``HogPart``; ``description`` is the ensemble's "hog" metadata entry."""

    described = " joined with HOG + logistic regression"

    def __init__(self, network, part, description):
        self.network, self.part, self.description = network, part, description

    def probabilities(self, pixels, features=None):
        """The served scores for ``pixels`` [N, S, S] in NumPy (``features``: their HOG, if known)."""
        features = hog(pixels) if features is None else features
        part = self.part
        r = part.combine(network_logits(self.network, pixels), features @ part.weights + part.biases)
        return calibration.sigmoid(part.slopes * r + part.intercepts)

    def serving_function(self, size):
        import tensorflow as tf

        from .networks import class_activation_maps, features_and_logits

        network, part = self.network, self.part

        def serve(image):
            # Constants made inside the trace become graph constants; made outside, tf2onnx takes
            # them for extra inputs.
            constant = HogPart(**{field.name: tf.constant(np.asarray(getattr(part, field.name)), tf.float32)
                                  for field in dataclasses.fields(HogPart)})
            features, cnn_logits = features_and_logits(network, image)
            r = constant.combine(cnn_logits, tf.matmul(hog_graph(image), constant.weights) + constant.biases)
            return {
                PROBABILITIES: tf.identity(tf.sigmoid(constant.slopes * r + constant.intercepts), name=PROBABILITIES),
                CAMS: tf.identity(class_activation_maps(network, features), name=CAMS),
            }

        spec = tf.TensorSpec((None, size, size, 1), tf.float32, name=INPUT_NAME)
        return tf.function(serve, input_signature=(spec,), autograph=False), spec

    def arrays(self, index):
        file = self.description.get("file", HOG_FILE)
        return {file: {f"{field.name}_{index}": getattr(self.part, field.name) for field in dataclasses.fields(HogPart)}}

    def metadata(self):
        return {"hog": self.description}


def load_hybrid_members(networks, path, description):
    """The members of a hybrid artefact: its ``networks`` joined with the parts stored at ``path``."""
    return [HybridMember(network, part, description) for network, part in zip(networks, load_parts(path))]
