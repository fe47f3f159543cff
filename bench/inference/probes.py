"""The inference benchmark's measuring subprocesses, each a fresh ``python -m bench.inference --probe
KIND`` so that its memory is its own: the served model's memory (``served``; it must not import
TensorFlow), the 14 Keras networks of the original design (``keras``), and exporting the untrained
MobileNet stand-in (``build-mobilenet``). Each prints one ``PROBE-RESULT`` JSON line, which
``run_probe`` reads."""

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

from bench._common import PYTHON, REPO, django_env, memory_mb, summary_ms
from bench.inference.options import FINDINGS_COUNT


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
    """Run a probe subprocess of this benchmark; its result dict (with "error" on failure)."""
    command = [
        PYTHON,
        "-m",
        "bench.inference",
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
