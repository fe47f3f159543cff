"""Export trained Keras networks to the one ONNX serving graph the web app runs.

The graph (see ``diagnosis.artefact``) takes ``image`` float32 [N, S, S, 1] of raw pixels 0..255
and returns ``probabilities`` [N, 14] and ``cams`` [N, h, w, 14]. A multilabel network gives all
14 columns; for per-finding, the 14 binary networks are combined into one graph, each giving
its own column of both outputs; for a cross-validated ensemble of multilabel networks, the graph
averages their probabilities and their CAMs.
"""

import time
from pathlib import Path

import numpy as np

from diagnosis.findings import FINDINGS

from diagnosis.serving import CAMS, INPUT_NAME, OUTPUT_NAMES, PROBABILITIES

from .networks import class_activation_maps, features_and_probabilities

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
            PROBABILITIES: tf.identity(tf.concat(probabilities, axis=-1), name=PROBABILITIES),
            CAMS: tf.identity(tf.concat(cams, axis=-1), name=CAMS),
        }

    spec = tf.TensorSpec((None, size, size, 1), tf.float32, name=INPUT_NAME)
    # autograph=False: trace the Python loop as it is; autograph would re-read this source from disk.
    return tf.function(serve, input_signature=(spec,), autograph=False), spec


def export_onnx(models, size, path, hog_members=None):
    """Write the serving graph of ``models`` to ``path`` (an ONNX file); return ``path``.
    With ``hog_members`` (``mltrain.hog_member``), each network is served with its HOG part.

    One model converts directly. Several convert one by one, and their graphs are joined into one
    that feeds ``image`` to each and concatenates (per-finding) or averages (ensemble) their
    outputs: converting many networks as one TensorFlow function is far slower in tf2onnx.
    """
    import onnx

    models = list(models)
    if hog_members:
        from .hog_member import member_serving_function

        protos = [_convert_function(*member_serving_function(model, member, size))
                  for model, member in zip(models, hog_members)]
    else:
        protos = [_convert_function(*serving_function([model], size)) for model in models]
    proto = protos[0] if len(protos) == 1 else _join(protos, combination(models))
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return Path(path)


def _convert_function(function, spec):
    import tf2onnx

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
    nodes, initializers = _shared_once(nodes, initializers)
    produced = {name for node in nodes for name in node.output}
    value_info = [info for info in value_info if info.name in produced]
    graph = helper.make_graph(nodes, title, [image], graph_outputs, initializer=initializers, value_info=value_info)
    return helper.make_model(graph, opset_imports=protos[0].opset_import, producer_name="dispredo")


def _shared_once(nodes, initializers):
    """Drop the nodes and constants that repeat another's work: equal constants, and nodes of the same
    operation, attributes and (so far de-duplicated) inputs. The joined graphs all start from the same
    image, so work that depends on it alone (HOG features, ``mltrain.hybrid``) is then done once per
    image instead of once per member. Networks' layers differ in their weights and stay apart."""
    import hashlib

    from onnx import numpy_helper

    rename, kept_initializers, by_value = {}, [], {}
    for tensor in initializers:
        key = (tensor.data_type, tuple(tensor.dims), hashlib.sha256(numpy_helper.to_array(tensor).tobytes()).hexdigest())
        if key in by_value:
            rename[tensor.name] = by_value[key]
        else:
            by_value[key] = tensor.name
            kept_initializers.append(tensor)
    kept_nodes, by_work = [], {}
    for node in nodes:
        node.input[:] = [rename.get(name, name) for name in node.input]
        key = (node.domain, node.op_type, tuple(node.input),
               tuple(attribute.SerializeToString(deterministic=True) for attribute in node.attribute))
        if key in by_work and not set(node.output) & set(OUTPUT_NAMES):
            for mine, theirs in zip(node.output, by_work[key].output):
                rename[mine] = theirs
        else:
            by_work.setdefault(key, node)
            kept_nodes.append(node)
    return kept_nodes, kept_initializers


def onnx_session(path, threads=None):
    """An ONNX Runtime session on ``path``, opened as the web app opens it (``diagnosis.serving``)."""
    from diagnosis.serving import open_session

    return open_session(path, threads)


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


def check_agreement(models, onnx_path, pixels, tolerance=AGREEMENT_TOLERANCE, hog_members=None):
    """Compare ONNX and Keras on ``pixels``; return the figures, raise ``ExportError`` beyond ``tolerance``.

    The Keras side calls each trained network as a whole (inference mode), not the export's function;
    with ``hog_members``, HOG and the joint scores are computed in NumPy (``hog_member.served_probabilities``).
    """
    pixels = np.asarray(pixels)
    batch = pixels.astype(np.float32)[..., None]
    if hog_members:
        from .hog_member import served_probabilities

        keras_probs = served_probabilities(models, hog_members, pixels)
    else:
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
