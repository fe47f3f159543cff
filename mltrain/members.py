"""What a served model is made of: its members, each behind the ``Member`` interface.

A member is a trained network, possibly with more parts joined to it (``hog_member.HybridMember``).
Exporting (``mltrain.export``) and packaging (``mltrain.package``) ask each member for what they
need and never look at its kind:

- ``network``: its Keras network, saved as one ``.keras`` file; the served class activation maps
  are the network's;
- ``probabilities(pixels)``: what the served graph gives for this member on uint8 pixels
  [N, S, S], computed without ONNX (the reference the export is checked against, and the member's
  scores on the folds it left out);
- ``serving_function(size)``: a ``tf.function`` image -> {"probabilities", "cams"} and its input
  spec, which ``export`` converts to the member's ONNX subgraph;
- ``arrays(index)``: the arrays it adds to the artefact beyond its network, by file name
  (``{}`` for a plain network); each such file holds every member's arrays and their ``count``;
- ``metadata()``: the metadata entries it adds (the same for every member of a model);
- ``described``: words on what joins the network, for the artefact's description of its scores.
"""

from pathlib import Path
from typing import Protocol

from dispredo_core.serving import CAMS, HOG_FILE, INPUT_NAME, PROBABILITIES


class Member(Protocol):
    network: object
    described: str

    def probabilities(self, pixels): ...

    def serving_function(self, size): ...

    def arrays(self, index): ...

    def metadata(self): ...


class NetworkMember:
    """A trained network served as it is: its sigmoid outputs and its class activation maps."""

    described = ""

    def __init__(self, network):
        self.network = network

    def probabilities(self, pixels):
        from .networks import predict

        return predict([self.network], pixels)

    def serving_function(self, size):
        import tensorflow as tf

        from .networks import class_activation_maps, features_and_probabilities

        network = self.network

        def serve(image):
            features, probabilities = features_and_probabilities(network, image)
            return {
                PROBABILITIES: tf.identity(probabilities, name=PROBABILITIES),
                CAMS: tf.identity(class_activation_maps(network, features), name=CAMS),
            }

        spec = tf.TensorSpec((None, size, size, 1), tf.float32, name=INPUT_NAME)
        # autograph=False: trace the function as it is; autograph would re-read this source from disk.
        return tf.function(serve, input_signature=(spec,), autograph=False), spec

    def arrays(self, index):
        return {}

    def metadata(self):
        return {"hog": None}  # the format's entry for a model without HOG parts


def network_members(networks):
    """Each of ``networks`` as a member served as it is."""
    return [NetworkMember(network) for network in networks]


def load_members(directory, metadata):
    """The members of the artefact at ``directory`` (with ``metadata``), in serving order."""
    from .networks import load_networks

    networks = load_networks(directory, metadata["keras_files"])
    if metadata.get("hog"):
        from .hog_member import load_hybrid_members

        return load_hybrid_members(networks, Path(directory) / metadata["hog"].get("file", HOG_FILE), metadata["hog"])
    return network_members(networks)
