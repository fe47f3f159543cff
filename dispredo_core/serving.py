"""The serving contract between ``mltrain`` (which writes model artefacts) and the web app (which
serves them): the artefact's file names, the serving graph's tensor names and how an ONNX Runtime
session on it is opened. ``dispredo_core.artefact`` describes the format these names belong to.

Everything that writes or reads an artefact takes these names from here.
"""

import os

# Files of an artefact directory.
METADATA_FILE = "metadata.json"  # written last: a directory with a readable one is complete
ONNX_FILE = "model.onnx"  # the serving graph
PATIENTS_FILE = "patients.json"  # the patients the model trained on ("train") and selected on ("val")
HOLDOUT_FILE = "holdout_scores.npz"  # scores of patients it did not train on (dispredo_core.reliability)
GUARD_FILE = "guard.npz"  # the input guard (dispredo_core.guard)
HOG_FILE = "hog.npz"  # the HOG + logistic-regression parts of a hybrid ensemble (mltrain.hog_member)
MODEL_CARD_FILE = "MODEL_CARD.md"  # optional

# The serving graph: float32 [N, S, S, 1] raw pixels in, [N, 14] probabilities and [N, h, w, 14] CAMs out.
INPUT_NAME = "image"
PROBABILITIES = "probabilities"
CAMS = "cams"
OUTPUT_NAMES = (PROBABILITIES, CAMS)
PIXEL_RANGE = (0, 255)

THREADS_VARIABLE = "DISPREDO_INFERENCE_THREADS"
DEFAULT_THREADS = 2


def session_options(threads=None):
    """ONNX Runtime session options for serving: ``threads`` intra-op threads (default
    ``DISPREDO_INFERENCE_THREADS``, else 2), one inter-op thread, no spinning."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # One request at a time per thread: intra-op threads give latency, not throughput.
    options.intra_op_num_threads = threads or int(os.environ.get(THREADS_VARIABLE, str(DEFAULT_THREADS)))
    options.inter_op_num_threads = 1
    # Spinning threads would keep burning the cores the next upload's PNG decode needs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def open_session(path, threads=None):
    """An ONNX Runtime CPU session on the serving graph at ``path``."""
    import onnxruntime

    return onnxruntime.InferenceSession(
        str(path), sess_options=session_options(threads), providers=["CPUExecutionProvider"]
    )


def run_batch(session, batch, input_name=INPUT_NAME):
    """``[probabilities, cams]`` of ``session`` for a float32 batch [N, S, S, 1]."""
    return session.run(list(OUTPUT_NAMES), {input_name: batch})
