"""The inference benchmark's served model, timed in this process: the artefact chosen (or a stand-in
built), then model time, input guard, end to end from PNG, decode alone, DICOM decode per transfer
syntax, batch throughput, and the same with ONNX Runtime's thread spinning off."""

import os
import time
from pathlib import Path

from bench._common import REPO, SAMPLE_SIZES, BenchError, summary_ms
from bench.inference.probes import run_probe


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
