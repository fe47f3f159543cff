"""A tiny serving model in the artefact format, built with ONNX directly (no TensorFlow).

It is a real network (conv -> ReLU -> global average pool -> dense -> sigmoid, with class
activation maps), so tests exercise the same loading and scoring code as a trained model.
"""

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from dispredo_core.artefact import write_metadata
from dispredo_core.findings import FINDINGS
from dispredo_core.reliability import RELIABILITY_FLOOR
from dispredo_core.serving import INPUT_NAME, ONNX_FILE, PATIENTS_FILE

CHANNELS = 4


def tiny_reliability(unreliable=()):
    """Reliability figures in the artefact format: every finding reliable except ``unreliable``."""
    return {
        "floor": RELIABILITY_FLOOR,
        "level": 0.95,
        "rounds": 1000,
        "findings": {
            name: {"auroc": 0.55, "low": 0.45, "high": 0.65, "positives": 20, "reliable": False}
            if name in unreliable
            else {"auroc": 0.8, "low": 0.7, "high": 0.9, "positives": 20, "reliable": True}
            for name in FINDINGS
        },
    }


RESPONSES = (None, "bright", "dark", "constant")


def _weights(response, rng):
    """Conv, dense and bias weights: random, or every finding's score a function of the image's mean
    brightness m (0..1): sigmoid(10 (m - 0.5)) for "bright", sigmoid(-10 (m - 0.5)) for "dark", and
    0.5 whatever the image for "constant"."""
    if response is None:
        conv = rng.normal(0, 0.5, (CHANNELS, 1, 4, 4)).astype(np.float32)
        dense = rng.normal(0, 1.0, (CHANNELS, len(FINDINGS))).astype(np.float32)
        return conv, dense, rng.normal(0, 0.5, (len(FINDINGS),)).astype(np.float32)
    if response not in RESPONSES:
        raise ValueError(f"response must be one of {RESPONSES}, not {response!r}.")
    sign = {"bright": 1.0, "dark": -1.0, "constant": 0.0}[response]
    conv = np.full((CHANNELS, 1, 4, 4), 1 / 16, dtype=np.float32)  # each channel: the mean of a 4x4 cell
    dense = np.full((CHANNELS, len(FINDINGS)), sign * 10 / CHANNELS, dtype=np.float32)
    return conv, dense, np.full((len(FINDINGS),), -sign * 5, dtype=np.float32)


def build_tiny_artefact(
    directory, *, name="tiny-test-model", size=32, seed=0, thresholds=None, unreliable=(), extra=None,
    response=None, patients=None,
):
    """Write a complete artefact into ``directory``; returns its metadata.

    Every finding is reliable except ``unreliable``; ``extra`` adds or replaces metadata entries.
    ``response`` (``RESPONSES``) makes the scores follow the image's brightness instead of random
    weights; ``patients`` (``{"train": [...], "val": [...]}``) is written as its patients.json."""
    rng = np.random.default_rng(seed)
    conv, dense, bias = _weights(response, rng)
    nodes = [
        helper.make_node("Mul", ["image", "scale"], ["scaled"]),
        helper.make_node("Transpose", ["scaled"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "conv_w"], ["conv"], strides=[4, 4]),
        helper.make_node("Relu", ["conv"], ["features"]),
        helper.make_node("GlobalAveragePool", ["features"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "dense_w", "dense_b"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["probabilities"]),
        helper.make_node("Transpose", ["features"], ["nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("MatMul", ["nhwc", "dense_w"], ["cams"]),
    ]
    initializers = [
        numpy_helper.from_array(np.array(1 / 255, dtype=np.float32), "scale"),
        numpy_helper.from_array(conv, "conv_w"),
        numpy_helper.from_array(dense, "dense_w"),
        numpy_helper.from_array(bias, "dense_b"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", size, size, 1])],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", len(FINDINGS)]),
            helper.make_tensor_value_info("cams", TensorProto.FLOAT, ["N", size // 4, size // 4, len(FINDINGS)]),
        ],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    directory.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(directory / ONNX_FILE))
    if patients is not None:
        (directory / PATIENTS_FILE).write_text(json.dumps({"train": [], "val": [], **patients}))
        extra = {"patients_file": PATIENTS_FILE, **(extra or {})}
    return write_metadata(
        directory,
        {
            "name": name,
            "strategy": "test",
            "findings": list(FINDINGS),
            "thresholds": thresholds or {finding: 0.5 for finding in FINDINGS},
            "input_size": size,
            "serving": {"file": ONNX_FILE, "input": INPUT_NAME},
            "metrics": {},
            "reliability": tiny_reliability(unreliable),
            **(extra or {}),
        },
    )
