"""Export a model's members (``mltrain.members``) to the one ONNX serving graph the web app runs.

The graph (``dispredo_core.serving``) takes ``image`` float32 [N, S, S, 1] of raw pixels 0..255 and
returns ``probabilities`` [N, 14] and ``cams`` [N, h, w, 14]. Each member gives its own subgraph
(``Member.serving_function``). One multilabel member gives all 14 columns; 14 one-output members
(per-finding) each give their own column of both outputs; the members of a cross-validated
ensemble (14 outputs each) are averaged.
"""

import time
from pathlib import Path

import numpy as np

from dispredo_core.findings import FINDINGS
from dispredo_core.serving import INPUT_NAME, OUTPUT_NAMES, open_session, run_batch

from .networks import class_activation_maps, features_and_logits

OPSET = 17

# Exported and Keras probabilities must agree to within this (absolute); tests check it.
AGREEMENT_TOLERANCE = 1e-4


class ExportError(Exception):
    """The exported graph does not reproduce the Keras networks."""


def combination(members):
    """How the members' outputs make the 14 columns: ``"mean"`` for an ensemble of 14-output members,
    ``"concat"`` otherwise (one multilabel member, or 14 one-output per-finding members)."""
    members = list(members)
    if len(members) > 1 and all(member.network.output_shape[-1] == len(FINDINGS) for member in members):
        return "mean"
    return "concat"


def combine(arrays, how):
    """Join per-member outputs (each [..., K]) the way ``combination`` says."""
    return np.mean(arrays, axis=0) if how == "mean" else np.concatenate(arrays, axis=-1)


def export_onnx(members, size, path):
    """Write the serving graph of ``members`` to ``path`` (an ONNX file); return ``path``.

    Each member converts on its own, and several are joined into one graph that feeds ``image`` to
    each and concatenates (per-finding) or averages (ensemble) their outputs: converting many
    networks as one TensorFlow function is far slower in tf2onnx.
    """
    import onnx

    members = list(members)
    protos = [_convert_function(*member.serving_function(size)) for member in members]
    proto = protos[0] if len(protos) == 1 else _join(protos, combination(members))
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
    """An ONNX Runtime session on ``path``, opened as the web app opens it (``dispredo_core.serving``)."""
    return open_session(path, threads)


def run_onnx(session, pixels, batch_size=64):
    """``(probabilities [N, 14], cams [N, h, w, 14])`` of ``session`` for uint8/float ``pixels`` [N, S, S]."""
    probabilities, cams = [], []
    for start in range(0, len(pixels), batch_size):
        batch = np.asarray(pixels[start : start + batch_size], dtype=np.float32)[..., None]
        probs, maps = run_batch(session, batch)
        probabilities.append(probs)
        cams.append(maps)
    return np.concatenate(probabilities), np.concatenate(cams)


def network_cams(network, pixels, batch_size=64):
    """A network's class activation maps for ``pixels`` [N, S, S], run eagerly layer by layer."""
    maps = []
    for start in range(0, len(pixels), batch_size):
        batch = np.asarray(pixels[start : start + batch_size], dtype=np.float32)[..., None]
        features, _ = features_and_logits(network, batch)
        maps.append(np.asarray(class_activation_maps(network, features)))
    return np.concatenate(maps)


def keras_outputs(members, pixels):
    """The members' ``(probabilities, cams)`` for ``pixels`` [N, S, S], computed without ONNX and
    joined as the served graph joins them."""
    how = combination(members)
    return (
        combine([member.probabilities(pixels) for member in members], how),
        combine([network_cams(member.network, pixels) for member in members], how),
    )


def check_agreement(members, onnx_path, pixels, tolerance=AGREEMENT_TOLERANCE):
    """Compare ONNX with the members' own scores (``keras_outputs``) on ``pixels``; return the figures,
    raise ``ExportError`` beyond ``tolerance``."""
    pixels = np.asarray(pixels)
    keras_probs, keras_cams = keras_outputs(members, pixels)
    session = onnx_session(onnx_path)
    onnx_probs, onnx_cams = run_onnx(session, pixels)
    prob_diff = float(np.max(np.abs(keras_probs - onnx_probs))) if len(pixels) else 0.0
    cam_scale = float(np.max(np.abs(keras_cams))) or 1.0
    cam_diff = float(np.max(np.abs(keras_cams - onnx_cams))) / cam_scale if len(pixels) else 0.0
    one = np.asarray(pixels[:1], dtype=np.float32)[..., None]
    run_batch(session, one)
    repeats = 50
    started = time.perf_counter()
    for _ in range(repeats):
        run_batch(session, one)
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
