"""The inference benchmark's report: latency, throughput and memory tables, the goals, and the
ratios of the 14 Keras networks to the served model."""

from bench._common import table
from bench.inference.options import GOAL_MEDIAN_MS, GOAL_RSS_MB


def _fmt(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def report(figures):
    served, probe, keras = figures["served"], figures["served_memory"], figures.get("keras")
    lines = [
        f"Served model: {served['name']} ({served['strategy']}, {served['input_size']}x{served['input_size']}, "
        f"CAMs {served['cam_shape']}) from {served['artefact']}",
        f"ONNX Runtime, {served['threads']} intra-op threads; model load {served['load_s']} s",
        "",
    ]
    rows = []
    m = served["model_time_one_image"]
    rows.append(["served: model time, 1 image, 14 findings", _fmt(m["median_ms"]), _fmt(m["p95_ms"]), m["n"]])
    g = served.get("input_guard_one_image")
    if g:
        rows.append(["served: input guard, 1 image", _fmt(g["median_ms"]), _fmt(g["p95_ms"]), g["n"]])
    for size, s in served["end_to_end_from_png"].items():
        rows.append([f"served: end to end from {size} px PNG", _fmt(s["median_ms"]), _fmt(s["p95_ms"]), s["n"]])
    for size, s in served["decode_and_resize_only"].items():
        rows.append([f"  of which decode + resize ({size} px)", _fmt(s["median_ms"]), _fmt(s["p95_ms"]), s["n"]])
    for label, s in (served.get("dicom_decode_and_resize") or {}).items():
        rows.append([f"  DICOM {label}: decode + resize", _fmt(s["median_ms"]), _fmt(s["p95_ms"]), s["n"]])
    off = served["spinning_off"]
    for label, s in (
        ("served, ORT spinning off: model time", off["model_time_one_image"]),
        ("served, ORT spinning off: end to end 1024 px", off["end_to_end_from_png_1024"]),
    ):
        rows.append([label, _fmt(s["median_ms"]), _fmt(s["p95_ms"]), s["n"]])
    b = served["batch_latency"]
    rows.append([f"served: batch of {served['batch']}", _fmt(b["median_ms"]), _fmt(b["p95_ms"]), b["n"]])
    if keras and "latency_all_14" in keras:
        k = keras["latency_all_14"]
        rows.append(
            [f"Keras: 14 MobileNets one after another ({keras['api']})", _fmt(k["median_ms"]), _fmt(k["p95_ms"]), k["n"]]
        )
    lines.append(table(rows, ["latency", "median ms", "p95 ms", "runs"]))
    lines.append("")
    lines.append(f"Throughput at batch {served['batch']}: {served['batch_images_per_s']} images/s")
    lines.append("")

    mem_rows = []
    if "after_score" in probe:
        mem_rows.append(
            [
                "served: Django + model + 1 image scored",
                _fmt(probe["after_django"]["rss_mb"], 1),
                _fmt(probe["after_score"]["rss_mb"], 1),
                _fmt(probe["after_score"]["peak_rss_mb"], 1),
            ]
        )
    if keras and "after_runs" in keras:
        mem_rows.append(
            [
                "Keras: TensorFlow + 14 networks, runs done",
                _fmt(keras["after_import"]["rss_mb"], 1),
                _fmt(keras["after_runs"]["rss_mb"], 1),
                _fmt(keras["after_runs"]["peak_rss_mb"], 1),
            ]
        )
    if mem_rows:
        lines.append(table(mem_rows, ["memory (fresh process)", "before model MB", "RSS MB", "peak MB"]))
    if "tensorflow_imported" in probe:
        lines.append(
            "Serving process imported TensorFlow: "
            + ("YES (FAIL: the web process must not)" if probe["tensorflow_imported"] else "no (checked)")
            + "; Keras: "
            + ("YES (FAIL)" if probe["keras_imported"] else "no")
        )
    if "error" in probe:
        lines.append(f"Served-memory probe failed: {probe['error']}")
    lines.append("")

    goals = figures["goals"]
    lines.append(f"Goal: median model time <= {GOAL_MEDIAN_MS:g} ms for 14 findings: {goals['latency']}")
    lines.append(f"Goal: RSS <= {GOAL_RSS_MB:g} MB (judged on the peak, VmHWM): {goals['memory']}")
    if keras:
        if "error" in keras:
            lines.append(f"Keras comparison failed: {keras['error']}")
        else:
            lines.append(f"Keras networks: {keras['source']}; {keras['parameters_total']:,} parameters in all")
            lines.append(
                f"  (import {keras['import_s']} s, build/load {keras['build_s']} s, warm-up {keras['warmup_s']} s)"
            )
        ratios = figures.get("ratios", {})
        if ratios:
            lines.append(
                f"Ratio, 14 Keras networks / served model: median latency x{ratios['median_latency']}, "
                f"p95 x{ratios['p95_latency']}, peak RSS x{ratios['peak_rss']}"
                + (" (against the TINY TEST MODEL: meaningless)" if figures["stand_in_model"] == "tiny" else "")
            )
    return "\n".join(lines)
