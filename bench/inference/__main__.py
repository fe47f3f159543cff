"""The inference benchmark's run, in order (``python -m bench.inference --help``; the package's
docstring says what it measures). With ``--probe KIND`` it is one of the measuring subprocesses."""

import json
import os
import secrets
import sys
import tempfile
from pathlib import Path

from bench._common import BenchError, banner, django_env, machine, machine_line, sample_files
from bench.inference.options import GOAL_MEDIAN_MS, GOAL_RSS_MB, STAND_IN_WARNING, parse_args
from bench.inference.probes import probe_build_mobilenet, probe_keras, probe_served, run_probe
from bench.inference.report import report
from bench.inference.served import choose_artefact, measure_served


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
        sys.exit(f"bench.inference: {exc}")
    except KeyboardInterrupt:
        sys.exit("bench.inference: interrupted")
