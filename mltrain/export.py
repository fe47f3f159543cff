"""Export trained Keras networks to the one ONNX serving graph the web app runs.

The graph (see ``diagnosis.artefact``) takes ``image`` float32 [N, S, S, 1] of raw pixels 0..255
and returns ``probabilities`` [N, 14] and ``cams`` [N, h, w, 14]. A multilabel network gives all
14 columns; for per-finding, the 14 binary networks are combined into one graph, each giving
its own column of both outputs; for a cross-validated ensemble of multilabel networks, the graph
averages their probabilities and their CAMs.
"""

import os
import time
from pathlib import Path

import numpy as np

from diagnosis.findings import FINDINGS

from .networks import class_activation_maps, features_and_probabilities

ONNX_FILE = "model.onnx"
INPUT_NAME = "image"
OUTPUT_NAMES = ("probabilities", "cams")
OPSET = 17

# Exported and Keras probabilities must agree to within this (absolute); tests check it.
AGREEMENT_TOLERANCE = 1e-4


class ExportError(Exception):
    """The exported graph does not reproduce the Keras networks."""


def combination(models):
    """How the networks' outputs make the 14 columns: ``"mean"`` for an ensemble of 14-unit networks,
    ``"concat"`` otherwise (one multilabel network, or 14 one-unit per-finding networks)."""
    models = list(models)
    if len(models) > 1 and all(model.output_shape[-1] == len(FINDINGS) for model in models):
        return "mean"
    return "concat"


def combine(arrays, how):
    """Join per-network outputs (each [..., K]) the way ``combination`` says."""
    return np.mean(arrays, axis=0) if how == "mean" else np.concatenate(arrays, axis=-1)


def serving_function(models, size):
    """A tf.function image -> {"probabilities", "cams"} over one 14-unit model or 14 one-unit models."""
    import tensorflow as tf

    models = list(models)

    def serve(image):
        probabilities, cams = [], []
        for model in models:
            features, probs = features_and_probabilities(model, image)
            probabilities.append(probs)
            cams.append(class_activation_maps(model, features))
        return {
            "probabilities": tf.identity(tf.concat(probabilities, axis=-1), name="probabilities"),
            "cams": tf.identity(tf.concat(cams, axis=-1), name="cams"),
        }

    spec = tf.TensorSpec((None, size, size, 1), tf.float32, name=INPUT_NAME)
    # autograph=False: trace the Python loop as it is; autograph would re-read this source from disk.
    return tf.function(serve, input_signature=(spec,), autograph=False), spec


def export_onnx(models, size, path):
    """Write the serving graph of ``models`` to ``path`` (an ONNX file); return ``path``.

    One model converts directly. Several convert one by one, and their graphs are joined into one
    that feeds ``image`` to each and concatenates (per-finding) or averages (ensemble) their
    outputs: converting many networks as one TensorFlow function is far slower in tf2onnx.
    """
    import onnx

    models = list(models)
    protos = [_convert(model, size) for model in models]
    proto = protos[0] if len(protos) == 1 else _join(protos, combination(models))
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return Path(path)


def _convert(model, size):
    import tf2onnx

    function, spec = serving_function([model], size)
    proto, _ = tf2onnx.convert.from_function(function, input_signature=(spec,), opset=OPSET)
    return proto


def _join(protos, how):
    """One ONNX model running every graph of ``protos`` on the shared input, outputs joined ``how``."""
    import onnx
    from onnx import helper

    nodes, initializers, value_info, outputs = [], [], [], {name: [] for name in OUTPUT_NAMES}
    for index, proto in enumerate(protos):
        prefixed = onnx.compose.add_prefix(proto, prefix=f"m{index}_")
        graph = prefixed.graph
        own_input = graph.input[0].name
        for node in graph.node:
            node.input[:] = [INPUT_NAME if name == own_input else name for name in node.input]
            nodes.append(node)
        initializers.extend(graph.initializer)
        value_info.extend(graph.value_info)
        by_name = {output.name: output for output in graph.output}
        for name in OUTPUT_NAMES:
            outputs[name].append(by_name[f"m{index}_{name}"].name)
    for name in OUTPUT_NAMES:
        if how == "mean":
            nodes.append(helper.make_node("Mean", outputs[name], [name], name=f"mean_{name}"))
        else:
            nodes.append(helper.make_node("Concat", outputs[name], [name], axis=-1, name=f"concat_{name}"))
    first = protos[0].graph
    image = helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT, None)
    image.CopyFrom(first.input[0])
    image.name = INPUT_NAME
    graph_outputs = []
    for name in OUTPUT_NAMES:
        template = next(o for o in first.output if o.name == name)
        info = onnx.ValueInfoProto()
        info.CopyFrom(template)
        if how == "concat":
            info.type.tensor_type.shape.dim[-1].ClearField("dim_param")
            info.type.tensor_type.shape.dim[-1].dim_value = len(protos)
        graph_outputs.append(info)
    title = "dispredo_ensemble" if how == "mean" else "dispredo_per_finding"
    graph = helper.make_graph(nodes, title, [image], graph_outputs, initializer=initializers, value_info=value_info)
    return helper.make_model(graph, opset_imports=protos[0].opset_import, producer_name="dispredo")


def onnx_session(path, threads=None):
    """An ONNX Runtime session on ``path`` (CPU)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    threads = threads or min(2, os.cpu_count() or 1)
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def run_onnx(session, pixels, batch_size=64):
    """``(probabilities [N, 14], cams [N, h, w, 14])`` of ``session`` for uint8/float ``pixels`` [N, S, S]."""
    probabilities, cams = [], []
    for start in range(0, len(pixels), batch_size):
        batch = np.asarray(pixels[start : start + batch_size], dtype=np.float32)[..., None]
        probs, maps = session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch})
        probabilities.append(probs)
        cams.append(maps)
    return np.concatenate(probabilities), np.concatenate(cams)


def keras_outputs(models, pixels, batch_size=64):
    """The Keras networks' ``(probabilities, cams)`` for ``pixels`` [N, S, S], run eagerly layer by layer."""
    how = combination(models)
    probabilities, cams = [], []
    for start in range(0, len(pixels), batch_size):
        batch = np.asarray(pixels[start : start + batch_size], dtype=np.float32)[..., None]
        probs, maps = [], []
        for model in models:
            features, p = features_and_probabilities(model, batch)
            probs.append(np.asarray(p))
            maps.append(np.asarray(class_activation_maps(model, features)))
        probabilities.append(combine(probs, how))
        cams.append(combine(maps, how))
    return np.concatenate(probabilities), np.concatenate(cams)


def check_agreement(models, onnx_path, pixels, tolerance=AGREEMENT_TOLERANCE):
    """Compare ONNX and Keras on ``pixels``; return the figures, raise ``ExportError`` beyond ``tolerance``.

    The Keras side calls each trained network as a whole (inference mode), not the export's function.
    """
    pixels = np.asarray(pixels)
    batch = pixels.astype(np.float32)[..., None]
    keras_probs = combine([np.asarray(model(batch, training=False)) for model in models], combination(models))
    session = onnx_session(onnx_path)
    onnx_probs, onnx_cams = run_onnx(session, pixels)
    _, keras_cams = keras_outputs(models, pixels)
    prob_diff = float(np.max(np.abs(keras_probs - onnx_probs))) if len(pixels) else 0.0
    cam_scale = float(np.max(np.abs(keras_cams))) or 1.0
    cam_diff = float(np.max(np.abs(keras_cams - onnx_cams))) / cam_scale if len(pixels) else 0.0
    one = np.asarray(pixels[:1], dtype=np.float32)[..., None]
    session.run(list(OUTPUT_NAMES), {INPUT_NAME: one})
    repeats = 50
    started = time.perf_counter()
    for _ in range(repeats):
        session.run(list(OUTPUT_NAMES), {INPUT_NAME: one})
    latency_ms = (time.perf_counter() - started) / repeats * 1000
    figures = {
        "images": int(len(pixels)),
        "max_abs_probability_difference": prob_diff,
        "max_relative_cam_difference": cam_diff,
        "tolerance": tolerance,
        "onnx_latency_ms_one_image": round(latency_ms, 3),
        "cam_shape": list(onnx_cams.shape[1:]),
    }
    if prob_diff > tolerance or cam_diff > tolerance * 10:
        raise ExportError(
            f"The exported ONNX model differs from Keras by {prob_diff:.2e} in probability "
            f"and {cam_diff:.2e} (relative) in CAMs; tolerance {tolerance:.0e}."
        )
    return figures
