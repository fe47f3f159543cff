"""Input guard benchmark: its time per image and how often it refuses what it should and should not.

    .venv/bin/python -m bench.guard                      # the shipped models/default/guard.npz
    .venv/bin/python -m bench.guard --guard PATH.npz     # any guard file
    .venv/bin/python -m bench.guard --json out.json      # also write the figures

Figures, for the guard as the web process runs it (``dispredo_core.guard.InputGuard``, NumPy only):

- time per image: ``accepts`` on one image's model pixels (already computed by the predictor, so
  no decoding is timed), one image per call, over the NIH images below (each ``--repeats`` times
  after a warm-up); median and p95;
- unseen NIH refusal rate: real NIH X-rays whose patients the shipped model did not train on
  (images_001 and images_002 of patients outside models/default/patients.json's "train" list,
  plus all of images_003); goal at most 2 %;
- corpus refusal rate: the images that are not chest X-rays of
  ``dispredo_site.testing.nonxray_corpus.build_corpus`` (photographs, CT and MR slices, text, charts,
  screenshots, synthetic patterns, inverted X-rays); goal at least 95 %. The ones that pass are listed.

Everything runs on one CPU thread; other load on the machine makes the times worse (the load
average is printed).
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from bench._common import REPO, BenchError, machine, machine_line, nih_sample, summary_ms, table
from dispredo_core.serving import GUARD_FILE, PATIENTS_FILE

GOAL_UNSEEN_REFUSED = 0.02
GOAL_CORPUS_REFUSED = 0.95
GOAL_MEDIAN_MS = 1.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench.guard",
        description="Time per image of the input guard and its refusal rates on unseen NIH X-rays "
        "and on images that are not chest X-rays. Prints a table; --json writes the figures.",
    )
    parser.add_argument(
        "--guard", metavar="PATH", default=str(REPO / "models" / "default" / GUARD_FILE),
        help="guard file (default models/default/guard.npz)",
    )
    parser.add_argument(
        "--patients", metavar="PATH", default=str(REPO / "models" / "default" / PATIENTS_FILE),
        help="the model's patients.json: NIH images of its 'train' patients are left out "
        "(default models/default/patients.json)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per image (default 3)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed calls before timing (default 50)")
    parser.add_argument("--json", metavar="PATH", help="also write all figures as JSON to PATH")
    return parser.parse_args(argv)


def measure(args):
    import numpy as np
    from PIL import Image

    from dispredo_core.guard import InputGuard
    from dispredo_core.imaging import to_model_pixels
    from dispredo_site.testing.nih_unseen import unseen_images

    guard = InputGuard.load(args.guard)
    folder = nih_sample()
    paths = [path for path, _ in unseen_images(folder, args.patients)]
    if not paths:
        raise BenchError(f"No unseen NIH images in {folder}.")
    print(f"Preparing the model pixels of {len(paths)} unseen NIH images ...", flush=True)
    nih = []
    for path in paths:
        with Image.open(path) as image:
            nih.append(to_model_pixels(image, guard.size))

    print("Building the corpus of images that are not chest X-rays ...", flush=True)
    from dispredo_site.testing.nonxray_corpus import build_corpus

    corpus = build_corpus(folder)
    corpus_pixels = [to_model_pixels(image, guard.size) for _, image in corpus]

    print(f"Timing {len(nih)} x {args.repeats} single-image calls ...", flush=True)
    for i in range(args.warmup):
        guard.accepts(nih[i % len(nih)])
    timings = []
    for _ in range(args.repeats):
        for pixels in nih:
            started = time.perf_counter()
            guard.accepts(pixels)
            timings.append(time.perf_counter() - started)
    batch = np.stack(nih)
    started = time.perf_counter()
    guard.scores(batch)
    batch_s = time.perf_counter() - started

    nih_scores = guard.scores(batch)
    corpus_scores = guard.scores(np.stack(corpus_pixels))
    refused_nih = [
        {"image": f"{p.parent.parent.name}/{p.name}", "score": round(float(s), 3)}
        for p, s in zip(paths, nih_scores)
        if s > guard.threshold
    ]
    passed_corpus = [
        {"image": name, "score": round(float(s), 3)}
        for (name, _), s in zip(corpus, corpus_scores)
        if s <= guard.threshold
    ]
    return {
        "guard": str(args.guard),
        "description": guard.description(),
        "time_per_image": summary_ms(timings),
        "batch": {"images": len(nih), "ms_per_image": round(1000 * batch_s / len(nih), 4)},
        "unseen_nih": {
            "images": len(nih),
            "refused": len(refused_nih),
            "refusal_rate": round(len(refused_nih) / len(nih), 4),
            "refused_images": refused_nih,
        },
        "corpus": {
            "images": len(corpus),
            "refused": len(corpus) - len(passed_corpus),
            "refusal_rate": round(1 - len(passed_corpus) / len(corpus), 4),
            "passed_images": passed_corpus,
            "median_score": round(statistics.median(float(s) for s in corpus_scores), 3),
        },
    }


def report(figures):
    d, t, u, c = figures["description"], figures["time_per_image"], figures["unseen_nih"], figures["corpus"]
    lines = [
        f"Guard {figures['guard']}: {d['size']}x{d['size']} model pixels, threshold {d['threshold']}, "
        f"fitted on {d['fitted_images']} images; held-out refusal rate on them {d['held_out_refusal_rate']:.2%}",
        "",
        table(
            [
                ["accepts(), 1 image per call", f"{t['median_ms']:.3f}", f"{t['p95_ms']:.3f}", t["n"]],
                [
                    f"scores(), batch of {figures['batch']['images']}, per image",
                    f"{figures['batch']['ms_per_image']:.3f}",
                    "",
                    1,
                ],
            ],
            ["time", "median ms", "p95 ms", "calls"],
        ),
        "",
        table(
            [
                ["unseen NIH X-rays (should pass)", u["images"], u["refused"], f"{u['refusal_rate']:.1%}"],
                ["not chest X-rays (should be refused)", c["images"], c["refused"], f"{c['refusal_rate']:.1%}"],
            ],
            ["images", "count", "refused", "rate"],
        ),
    ]
    if u["refused_images"]:
        lines.append("Refused NIH images: " + ", ".join(f"{r['image']} ({r['score']})" for r in u["refused_images"]))
    lines.append(
        "Corpus images that passed: "
        + (", ".join(f"{r['image']} ({r['score']})" for r in c["passed_images"]) or "none")
    )
    lines.append("")
    goals = figures["goals"]
    lines.append(f"Goal: unseen NIH refused <= {GOAL_UNSEEN_REFUSED:.0%}: {goals['unseen_nih']}")
    lines.append(f"Goal: corpus refused >= {GOAL_CORPUS_REFUSED:.0%}: {goals['corpus']}")
    lines.append(f"Goal: median time per image <= {GOAL_MEDIAN_MS:g} ms: {goals['time']}")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    info = machine()
    print(machine_line(info), flush=True)
    figures = {"machine_at_start": info, "args": vars(args)}
    figures.update(measure(args))
    figures["machine_at_end"] = machine()
    u, c, t = figures["unseen_nih"], figures["corpus"], figures["time_per_image"]
    figures["goals"] = {
        "unseen_nih": ("met" if u["refusal_rate"] <= GOAL_UNSEEN_REFUSED else "NOT met")
        + f" ({u['refusal_rate']:.1%})",
        "corpus": ("met" if c["refusal_rate"] >= GOAL_CORPUS_REFUSED else "NOT met") + f" ({c['refusal_rate']:.1%})",
        "time": ("met" if t["median_ms"] <= GOAL_MEDIAN_MS else "NOT met") + f" ({t['median_ms']:.3f} ms)",
    }
    print()
    print(report(figures))
    print(f"Load average at the end: {figures['machine_at_end']['load_average_1_5_15']}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, sort_keys=True))
        print(f"Figures written to {args.json}")
    return 0 if all(g.startswith("met") for g in figures["goals"].values()) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        sys.exit(f"bench.guard: {exc}")
    except KeyboardInterrupt:
        sys.exit("bench.guard: interrupted")
