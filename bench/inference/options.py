"""The inference benchmark's command line (``parse_args``, which also takes the probes' internal
options), its goals and the banner shown when it times a stand-in instead of a real model."""

import argparse
import os

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
        prog="python -m bench.inference",
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
    # Internal: the measuring subprocesses run this same module.
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
