"""Inference benchmark: the served ONNX model against the original design of 14 Keras MobileNets.

    .venv/bin/python bench/inference.py                 # the shipped model in models/default
    .venv/bin/python bench/inference.py --artefact DIR   # any artefact directory
    .venv/bin/python bench/inference.py --json out.json  # also write the figures

Served model (``diagnosis.lifecycle.predictors.Predictor``, ONNX Runtime, as a web worker runs it):

- model time for one image: ``predict_pixels`` on prepared pixels, all 14 findings (and CAMs);
- the input guard's time for one image, on the same pixels;
- end to end from PNG bytes for 64, 256 and 1024 px NIH images: ``open_xray`` + ``to_model_pixels``
  + predict;
- DICOM decode time per transfer syntax, next to PNG: ``open_xray`` (header checks, decode, display
  transforms) + ``to_model_pixels`` for each readable file of ``../shared/data/dicom-sample`` (or
  ``DISPREDO_DICOM_SAMPLE``), one row "DICOM <transfer syntax> (<width>x<height>)" per syntax and size;
- throughput at batch 32 (images/s);
- resident memory (VmRSS, peak VmHWM) of a fresh process that has only set up Django, loaded the
  model and scored one image; that process must not import TensorFlow (checked).

Original design, in a separate process so its memory is its own: 14 Keras MobileNet v1 networks
(alpha 1.0, grayscale 100x100, GAP -> Dropout -> Dense(1, sigmoid); untrained, since timing does not
depend on weights), or the artefact's own 14 per-finding .keras files when it has them, run one
after another for one image. The ratio of the two is printed.

Goals reported against: median model time <= 5 ms for all 14 findings, RSS <= 300 MB.
Everything runs on the CPU; other load on the machine makes every figure worse (the load
average is printed).
"""

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    PYTHON,
    REPO,
    SAMPLE_SIZES,
    BenchError,
    banner,
    django_env,
    machine,
    machine_line,
    memory_mb,
    sample_files,
    summary_ms,
    table,
)

STAND_IN_WARNING = {
    "tiny": "models/default does not exist: benchmarking the TINY TEST MODEL\n"
    "(dispredo_site.testing.tiny_model, one 4-channel conv). Its latency and memory say nothing about a\n"
    "trained MobileNet: run again once models/default exists, or pass --artefact DIR, or\n"
    "--stand-in mobilenet for an untrained MobileNet of the shipped design.",
    "mobilenet": "models/default does not exist: benchmarking an UNTRAINED multilabel MobileNet stand-in\n"
    "(the design manage.py train ships; timing and memory do not depend on the weights, but this is\n"
    "not the shipped model).",
}

GOAL_MEDIAN_MS = 5.0
GOAL_RSS_MB = 300.0
FINDINGS_COUNT = 14


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="bench/inference.py",
        description="Latency, throughput and memory of the served ONNX model, against 14 separate "
        "Keras MobileNets (the original design). Prints a table; --json writes the figures.",
    )
    parser.add_argument(
        "--artefact",
        metavar="DIR",
        help="model artefact directory (default: the shipped models/default; if it is missing, "
        "a tiny test model is built and the figures say so)",
    )
    parser.add_argument(
        "--stand-in",
        choices=("tiny", "mobilenet"),
        default="tiny",
        help="what to time when models/default is missing and no --artefact is given: the tiny ONNX test "
        "model (default; instant, says nothing about a real model) or an UNTRAINED multilabel MobileNet "
        "exported to ONNX as manage.py train does (imports TensorFlow in a subprocess, about a minute; "
        "latency and memory do not depend on the weights)",
    )
    parser.add_argument("--stand-in-size", type=int, default=100, help="input size of the MobileNet stand-in (default 100)")
    parser.add_argument(
        "--stand-in-alpha", type=float, default=0.25, help="MobileNet width of the stand-in (default 0.25, as train)"
    )
    parser.add_argument("--runs", type=int, default=200, help="timed single-image runs per measure (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed runs before each measure (default 20)")
    parser.add_argument("--batch", type=int, default=32, help="batch size for throughput (default 32)")
    parser.add_argument("--batch-runs", type=int, default=20, help="timed batches for throughput (default 20)")
    parser.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("DISPREDO_INFERENCE_THREADS", "2")),
        help="intra-op threads for ONNX Runtime and TensorFlow (default DISPREDO_INFERENCE_THREADS or 2, "
        "as a web worker)",
    )
    parser.add_argument(
        "--images", type=int, default=16, help="distinct sample images per source size (default 16: all 1024 px originals)"
    )
    parser.add_argument("--no-keras", action="store_true", help="skip the 14-Keras-MobileNets comparison")
    parser.add_argument("--keras-runs", type=int, default=50, help="timed runs of the 14 Keras networks (default 50)")
    parser.add_argument("--keras-warmup", type=int, default=3, help="untimed runs of the 14 Keras networks (default 3)")
    parser.add_argument("--keras-size", type=int, default=100, help="input size of the built Keras networks (default 100)")
    parser.add_argument(
        "--keras-alpha", type=float, default=1.0, help="MobileNet width of the built Keras networks (default 1.0)"
    )
    parser.add_argument(
        "--keras-api",
        choices=("predict_on_batch", "call", "predict"),
        default="predict_on_batch",
        help="how each Keras network is run: predict_on_batch (compiled graph, the fastest; default), "
        "call (model(x, training=False), eager) or predict (model.predict, as many notebooks do)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write all figures as JSON to PATH")
    # Internal: the measuring subprocesses run this same file.
    parser.add_argument("--probe", choices=("served", "keras", "build-mobilenet"), help=argparse.SUPPRESS)
    parser.add_argument("--image", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("runs", "batch", "batch_runs", "threads", "images", "keras_runs", "keras_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, not {getattr(args, name)}")
    for name in ("warmup", "keras_warmup"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must not be negative")
    return args


# --- the probes (subprocesses) -----------------------------------------------------------------


def _emit(result):
    """The probe's result: one JSON line on stdout, which the parent reads."""
    sys.stdout.write("\nPROBE-RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()


def probe_served(args):
    """A fresh web-like process: Django set up, the model loaded, one image scored; its memory."""
    result = {"baseline": memory_mb()}
    import django

    django.setup()
    import dispredo_site.urls  # noqa: F401  (what a web worker imports: admin, views, scoring)

    result["after_django"] = memory_mb()
    from dispredo_core.imaging import open_xray
    from dispredo_core.predictor import Predictor

    started = time.perf_counter()
    predictor = Predictor(args.artefact, threads=args.threads)
    result["load_s"] = round(time.perf_counter() - started, 3)
    result["after_load"] = memory_mb()
    scores = predictor.predict(open_xray(Path(args.image).read_bytes()))
    assert scores.probabilities.shape == (FINDINGS_COUNT,), scores.probabilities.shape
    result["after_score"] = memory_mb()
    result["tensorflow_imported"] = "tensorflow" in sys.modules
    result["keras_imported"] = "keras" in sys.modules
    _emit(result)
    # The serving path must never import TensorFlow (README: "the web process never imports TensorFlow").
    assert not result["tensorflow_imported"], "the serving process imported tensorflow"
    assert not result["keras_imported"], "the serving process imported keras"


def _keras_networks(args, keras):
    """The networks to time: the artefact's 14 per-finding .keras files, else 14 built as originally."""
    from dispredo_core.artefact import read_metadata, resolve

    try:
        metadata = read_metadata(args.artefact)
    except Exception:  # a probe on a broken artefact still times the built networks
        metadata = {}
    files = [resolve(args.artefact) / name for name in metadata.get("keras_files") or []]
    if len(files) == FINDINGS_COUNT and all(f.is_file() for f in files):
        import mltrain.networks  # noqa: F401  (registers the custom loss for deserialisation)

        models = [keras.models.load_model(f, compile=False) for f in files]
        size = int(models[0].input_shape[1])
        return models, {"source": f"artefact's per-finding .keras files ({resolve(args.artefact)})", "size": size}

    def build():
        image = keras.Input((args.keras_size, args.keras_size, 1))
        backbone = keras.applications.MobileNet(
            input_shape=(args.keras_size, args.keras_size, 1),
            alpha=args.keras_alpha,
            include_top=False,
            weights=None,
        )
        x = keras.layers.GlobalAveragePooling2D()(backbone(image))
        x = keras.layers.Dropout(0.5)(x)
        return keras.Model(image, keras.layers.Dense(1, activation="sigmoid")(x))

    models = [build() for _ in range(FINDINGS_COUNT)]
    return models, {
        "source": f"14 x keras.applications.MobileNet(alpha={args.keras_alpha}, weights=None), "
        f"{args.keras_size}x{args.keras_size}x1, GAP -> Dropout -> Dense(1, sigmoid)",
        "size": args.keras_size,
    }


def probe_keras(args):
    """14 Keras networks one after another for one image: latency and this process's memory."""
    import numpy as np

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    result = {"baseline": memory_mb()}
    started = time.perf_counter()
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    result["import_s"] = round(time.perf_counter() - started, 1)
    result["after_import"] = memory_mb()

    started = time.perf_counter()
    models, info = _keras_networks(args, keras)
    result.update(info)
    result["build_s"] = round(time.perf_counter() - started, 1)
    result["parameters_total"] = int(sum(m.count_params() for m in models))
    result["after_build"] = memory_mb()

    from dispredo_core.imaging import open_xray, to_model_pixels

    pixels = to_model_pixels(open_xray(Path(args.image).read_bytes()), info["size"])
    x = (pixels.astype(np.float32) / 255.0)[np.newaxis, ..., np.newaxis]
    run = {
        "predict_on_batch": lambda m: m.predict_on_batch(x),
        "call": lambda m: m(x, training=False),
        "predict": lambda m: m.predict(x, verbose=0),
    }[args.keras_api]
    result["api"] = args.keras_api

    def all_findings():
        return [float(np.asarray(run(m)).ravel()[0]) for m in models]

    started = time.perf_counter()
    for _ in range(max(args.keras_warmup, 1)):  # at least one: the first call traces each network
        all_findings()
    result["warmup_s"] = round(time.perf_counter() - started, 1)
    timings = []
    for _ in range(args.keras_runs):
        started = time.perf_counter()
        outputs = all_findings()
        timings.append(time.perf_counter() - started)
    assert len(outputs) == FINDINGS_COUNT
    result["latency_all_14"] = summary_ms(timings)
    result["after_runs"] = memory_mb()
    _emit(result)


def probe_build_mobilenet(args):
    """Write an artefact of an untrained multilabel MobileNet into ``args.artefact`` (TensorFlow, tf2onnx)."""
    from types import SimpleNamespace

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from dispredo_core.artefact import write_metadata
    from dispredo_core.findings import FINDINGS
    from dispredo_core.serving import INPUT_NAME, ONNX_FILE
    from mltrain.export import export_onnx
    from mltrain.members import NetworkMember
    from mltrain.networks import build_model

    config = SimpleNamespace(
        strategy="multilabel", size=args.stand_in_size, alpha=args.stand_in_alpha, weight_decay=0.0, dropout=0.3
    )
    directory = Path(args.artefact)
    directory.mkdir(parents=True)
    model = build_model(config, outputs=len(FINDINGS))
    export_onnx([NetworkMember(model)], config.size, directory / ONNX_FILE)
    write_metadata(
        directory,
        {
            "name": f"untrained-mobilenet-{config.size}px-a{config.alpha}",
            "strategy": "multilabel (untrained stand-in)",
            "findings": list(FINDINGS),
            "thresholds": {name: 0.5 for name in FINDINGS},
            "input_size": config.size,
            "serving": {"file": ONNX_FILE, "input": INPUT_NAME},
            "metrics": {},
        },
    )
    _emit({"parameters": int(model.count_params())})


def run_probe(kind, args, artefact, image, data_dir, timeout):
    """Run a probe subprocess of this file; its result dict (with "error" on failure)."""
    command = [
        PYTHON,
        str(Path(__file__).resolve()),
        "--probe",
        kind,
        "--artefact",
        str(artefact),
        "--image",
        str(image),
        "--threads",
        str(args.threads),
        "--keras-runs",
        str(args.keras_runs),
        "--keras-warmup",
        str(args.keras_warmup),
        "--keras-size",
        str(args.keras_size),
        "--keras-alpha",
        str(args.keras_alpha),
        "--keras-api",
        args.keras_api,
        "--stand-in-size",
        str(args.stand_in_size),
        "--stand-in-alpha",
        str(args.stand_in_alpha),
    ]
    env = django_env(data_dir, DISPREDO_SECRET_KEY=secrets.token_urlsafe(32), TF_CPP_MIN_LOG_LEVEL="2")
    try:
        done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"the {kind} probe ran past {timeout} s"}
    result = {}
    for line in done.stdout.splitlines():
        if line.startswith("PROBE-RESULT "):
            result = json.loads(line[len("PROBE-RESULT ") :])
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        result["error"] = f"the {kind} probe exited with {done.returncode}:\n{tail}"
    elif not result:
        result["error"] = f"the {kind} probe printed no result"
    return result


# --- the served model, in this process ----------------------------------------------------------


def choose_artefact(args, workdir):
    """(directory, stand_in): --artefact, else models/default, else a stand-in built now.

    ``stand_in`` is None for a real artefact, else "tiny" or "mobilenet".
    """
    from django.conf import settings

    if args.artefact:
        return Path(args.artefact).resolve(), None
    from dispredo_core.serving import METADATA_FILE

    default = Path(settings.DISPREDO_DEFAULT_MODEL_DIR)
    if (default / METADATA_FILE).is_file():
        return default, None
    if args.stand_in == "mobilenet":
        directory = Path(workdir) / "untrained-mobilenet"
        print("models/default is missing: exporting an untrained MobileNet stand-in (TensorFlow, ~1 min) ...", flush=True)
        result = run_probe("build-mobilenet", args, directory, "-", workdir, timeout=900)
        if "error" in result:
            raise BenchError(f"Could not build the MobileNet stand-in: {result['error']}")
        return directory, "mobilenet"
    from dispredo_site.testing.tiny_model import build_tiny_artefact

    directory = Path(workdir) / "tiny-test-model"
    build_tiny_artefact(directory)
    return directory, "tiny"


def time_calls(function, items, runs, warmup):
    """Durations (s) of ``function(item)`` over ``runs`` calls cycling through ``items``, after ``warmup``."""
    for i in range(warmup):
        function(items[i % len(items)])
    timings = []
    for i in range(runs):
        item = items[i % len(items)]
        started = time.perf_counter()
        function(item)
        timings.append(time.perf_counter() - started)
    return timings


def measure_served(args, artefact, files):
    import numpy as np

    from dispredo_core.artefact import read_metadata
    from dispredo_core.imaging import open_xray, to_model_pixels
    from dispredo_core.predictor import Predictor

    metadata = read_metadata(artefact)
    started = time.perf_counter()
    predictor = Predictor(artefact, threads=args.threads)
    load_s = time.perf_counter() - started
    size = predictor.input_size
    data = {s: [p.read_bytes() for p in paths] for s, paths in files.items()}
    prepared = [to_model_pixels(open_xray(b), size) for s in SAMPLE_SIZES for b in data[s]]

    def upload(data):
        """What an upload does: decode, the model's pixels, the input guard, then the model."""
        pixels = predictor.pixels(open_xray(data))
        predictor.accepts(pixels)
        return predictor.predict(pixels=pixels)

    model = time_calls(lambda px: predictor.predict_pixels(px[np.newaxis]), prepared, args.runs, args.warmup)
    guard = time_calls(predictor.accepts, prepared, args.runs, args.warmup) if predictor.guard else None
    end_to_end = {
        s: summary_ms(time_calls(upload, data[s], args.runs, args.warmup))
        for s in SAMPLE_SIZES
    }
    # Decoding and resizing alone, to show where end-to-end time goes.
    decode = {
        s: summary_ms(time_calls(lambda b: to_model_pixels(open_xray(b), size), data[s], max(args.runs // 4, 10), 2))
        for s in SAMPLE_SIZES
    }

    dicom_decode = measure_dicom_decode(size, max(args.runs // 10, 5))

    batch = np.stack([prepared[i % len(prepared)] for i in range(args.batch)])
    batch_times = time_calls(predictor.predict_pixels, [batch], args.batch_runs, min(args.warmup, 3))
    scores = predictor.predict_pixels(batch[:1])[0]

    # The same model with ONNX Runtime's worker threads not spin-waiting between runs. Spinning threads
    # keep a core busy after each run, which on 2 cores slows the image decoding that follows.
    predictor.session = _session(artefact, metadata, args.threads, spinning=False)
    no_spin_model = time_calls(lambda px: predictor.predict_pixels(px[np.newaxis]), prepared, args.runs, args.warmup)
    no_spin_e2e = time_calls(upload, data[1024], args.runs, args.warmup)
    return {
        "artefact": str(artefact),
        "name": metadata.get("name"),
        "strategy": metadata.get("strategy"),
        "input_size": size,
        "cam_shape": list(scores.cams.shape),
        "threads": args.threads,
        "load_s": round(load_s, 3),
        "model_time_one_image": summary_ms(model),
        "input_guard_one_image": summary_ms(guard) if guard else None,
        "end_to_end_from_png": {str(s): v for s, v in end_to_end.items()},
        "decode_and_resize_only": {str(s): v for s, v in decode.items()},
        "dicom_decode_and_resize": dicom_decode,
        "batch": args.batch,
        "batch_latency": summary_ms(batch_times),
        "batch_images_per_s": round(args.batch * len(batch_times) / sum(batch_times), 1),
        "images_per_size": {str(s): len(v) for s, v in data.items()},
        "spinning_off": {"model_time_one_image": summary_ms(no_spin_model), "end_to_end_from_png_1024": summary_ms(no_spin_e2e)},
    }


def measure_dicom_decode(size, runs):
    """{"<transfer syntax> (<w>x<h>)": summary} for each readable sample DICOM (empty without the sample)."""
    from dispredo_core.imaging import InvalidImage, open_xray, to_model_pixels

    folder = Path(os.environ.get("DISPREDO_DICOM_SAMPLE", REPO.parent / "shared" / "data" / "dicom-sample"))
    figures = {}
    for path in sorted(folder.glob("*.dcm")) if folder.is_dir() else []:
        data = path.read_bytes()
        try:
            image = open_xray(data)
        except InvalidImage:
            continue  # refused files (the hip, the broken codestream) have no decode time to report
        label = f"{image.info['dicom'].transfer_syntax} ({image.width}x{image.height})"
        if label not in figures:
            figures[label] = summary_ms(time_calls(lambda b: to_model_pixels(open_xray(b), size), [data], runs, 1))
    return figures


def _session(artefact, metadata, threads, spinning):
    """An ONNX Runtime session like ``Predictor``'s, with intra-op thread spinning on or off."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    from dispredo_core.serving import ONNX_FILE

    path = Path(artefact) / metadata.get("serving", {}).get("file", ONNX_FILE)
    return onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


# --- report ---------------------------------------------------------------------------------------


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


def main(argv=None):
    args = parse_args(argv)
    if args.probe == "served":
        return probe_served(args)
    if args.probe == "keras":
        return probe_keras(args)
    if args.probe == "build-mobilenet":
        return probe_build_mobilenet(args)

    info = machine()
    print(machine_line(info), flush=True)
    with tempfile.TemporaryDirectory(prefix="dispredo-bench-") as workdir:
        # This process writes nothing into the repository: Django's data directory is temporary.
        os.environ.clear()
        os.environ.update(django_env(workdir, DISPREDO_SECRET_KEY=secrets.token_urlsafe(32)))
        sys.path.insert(0, str(REPO))
        import django

        django.setup()
        artefact, stand_in = choose_artefact(args, workdir)
        if stand_in:
            print(banner(STAND_IN_WARNING[stand_in]), flush=True)
        files = sample_files(args.images)
        print(f"Served model from {artefact}: timing {args.runs} runs per measure ...", flush=True)
        figures = {"machine_at_start": info, "stand_in_model": stand_in, "args": vars(args)}
        figures["served"] = measure_served(args, artefact, files)
        probe_image = files[1024][0]
        print("Memory of a fresh serving process ...", flush=True)
        figures["served_memory"] = run_probe("served", args, artefact, probe_image, workdir, timeout=300)
        if not args.no_keras:
            print(
                f"Original design: 14 Keras MobileNets in a subprocess ({args.keras_runs} runs; importing "
                "TensorFlow and tracing 14 networks takes a minute or more) ...",
                flush=True,
            )
            figures["keras"] = run_probe("keras", args, artefact, probe_image, workdir, timeout=1200)
    figures["machine_at_end"] = machine()

    served, probe, keras = figures["served"], figures["served_memory"], figures.get("keras")
    median = served["model_time_one_image"]["median_ms"]
    peak = probe.get("after_score", {}).get("peak_rss_mb")
    qualifier = {
        None: "",
        "tiny": " (TINY TEST MODEL: says nothing about the real one)",
        "mobilenet": " (untrained MobileNet stand-in, not models/default)",
    }[stand_in]
    figures["goals"] = {
        "latency": ("met" if median <= GOAL_MEDIAN_MS else "NOT met") + f" ({median:.2f} ms){qualifier}",
        "memory": (
            "unknown (probe failed)"
            if peak is None
            else ("met" if peak <= GOAL_RSS_MB else "NOT met") + f" ({peak:.1f} MB){qualifier}"
        ),
    }
    if keras and "latency_all_14" in keras:
        k = keras["latency_all_14"]
        keras_peak = keras["after_runs"]["peak_rss_mb"]
        figures["ratios"] = {
            "median_latency": round(k["median_ms"] / median, 1),
            "p95_latency": round(k["p95_ms"] / served["model_time_one_image"]["p95_ms"], 1),
            "peak_rss": round(keras_peak / peak, 1) if peak else None,
        }

    print()
    if stand_in:
        print(banner(STAND_IN_WARNING[stand_in]))
    print(report(figures))
    end_load = figures["machine_at_end"]["load_average_1_5_15"]
    print(f"Load average at the end: {end_load}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, sort_keys=True))
        print(f"Figures written to {args.json}")
    failed = "error" in probe or probe.get("tensorflow_imported") or (keras and "error" in keras)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        sys.exit(f"bench/inference.py: {exc}")
    except KeyboardInterrupt:
        sys.exit("bench/inference.py: interrupted")
