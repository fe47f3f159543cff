"""Benchmark: training memory and speed at the size of the full NIH dataset.

    .venv/bin/python -m bench.train_scale [--counts 11212 112120] [--size 128] [--steps 40]
                                          [--epochs 2] [--batch-size 32] [--folds 1] [--work DIR]

For each image count it writes synthetic preprocessed data in ``mltrain.dataset``'s format (uint8
patterned pixels, memory-mapped ``.npy``; train/val/test 70/10/20 of the count, three images per
patient, a learnable label signal), then in a fresh process runs the real ``manage.py train`` code
path (``mltrain.training.train``: batches, fits with validation scoring and epoch checkpoints,
packaging with export, thresholds, reliability and input guard, registration in a throw-away
database) with each epoch cut to ``--steps`` batches of its shuffle of the whole split, so the
training work is the same at every count while validation and packaging score every image there is.

It prints per count: the process's peak resident memory (``getrusage`` maxrss, which also counts
the pages of the memory-mapped files that were read: page cache the kernel can take back), its peak
anonymous memory (RssAnon sampled every 50 ms: what the process itself holds), the seconds of the
fits, of their validation scoring and of the packaging, training images per second (validation
excluded) and scoring images per second. ``--folds 2`` runs a cross-validated ensemble instead: its
holdout is all of train + val, scored out of fold. The data is removed at the end unless ``--work``
names a folder to keep it in (a second run there reuses it).
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import PYTHON, REPO, django_env, machine, machine_line, table

SHARES = {"train": 0.7, "val": 0.1, "test": 0.2}
CHUNK = 4096  # images generated and written at a time


def write_dataset(directory, count, size, seed=0):
    """Synthetic preprocessed data of ``count`` images of ``size`` px in ``directory``; returns the manifest."""
    import numpy as np

    from dispredo_core.findings import FINDINGS

    directory = Path(directory)
    manifest_path = directory / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("images_found") == count and manifest.get("size") == size:
            return manifest
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    bank = rng.integers(0, 256, (64, size, size), dtype=np.uint8)  # textures the images are drawn from
    counts = {"train": int(count * SHARES["train"]), "val": int(count * SHARES["val"])}
    counts["test"] = count - counts["train"] - counts["val"]
    prevalence = np.linspace(0.01, 0.12, len(FINDINGS))
    first, splits = 0, {}
    for split, n in counts.items():
        pixels = np.lib.format.open_memmap(directory / f"{split}_pixels.npy", "w+", np.uint8, (n, size, size))
        labels = (rng.random((n, len(FINDINGS))) < prevalence).astype(np.uint8)
        for start in range(0, n, CHUNK):
            rows = np.arange(start, min(n, start + CHUNK))
            block = bank[(first + rows) % len(bank)].copy()
            block[labels[rows, 0] == 1, : size // 2, : size // 2] = 250  # the first finding brightens a corner
            pixels[rows[0] : rows[-1] + 1] = block
        pixels.flush()
        del pixels
        patients = (first + np.arange(n)) // 3 + 1
        np.save(directory / f"{split}_labels.npy", labels)
        np.save(directory / f"{split}_patients.npy", patients.astype(np.int64))
        np.save(directory / f"{split}_names.npy", np.array([f"{p:08d}_{i % 3:03d}.png" for i, p in enumerate(patients)]))
        np.save(directory / f"{split}_source_sizes.npy", np.full(n, 1024, dtype=np.int32))
        splits[split] = {
            "count": n,
            "patients": int(len(np.unique(patients))),
            "per_finding": dict(zip(FINDINGS, map(int, labels.sum(axis=0)))),
            "no_finding": int((labels.sum(axis=1) == 0).sum()),
        }
        first += n
    manifest = {
        "format_version": 1, "size": size, "findings": list(FINDINGS), "seed": seed, "source": "synthetic",
        "split_method": "grouped", "images_found": count, "splits": splits,
    }
    manifest_path.write_text(json.dumps(manifest))
    return manifest


CHILD = r"""
import json, os, resource, sys, threading, time
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)

peak = {"anon_mb": 0.0}
def sample():
    while True:
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                peak["anon_mb"] = max(peak["anon_mb"], int(line.split()[1]) / 1024)
        time.sleep(0.05)
threading.Thread(target=sample, daemon=True).start()

from mltrain import fit as fitting, networks, registry, training
from mltrain.config import TrainConfig

# Time apart the scoring (every predict: validation each epoch inside the fits, out-of-fold after)
# and the packaging (export, thresholds, guard, registration).
spent = {"validation_s": 0.0, "other_scoring_s": 0.0, "scored_images": 0, "package_s": 0.0}
inside = []
def timed(function, key):
    def wrapper(*args, **kwargs):
        inside.append(key)
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            inside.pop()
            seconds = time.perf_counter() - started
            if key == "predict":
                spent["validation_s" if "fit" in inside else "other_scoring_s"] += seconds
                spent["scored_images"] += len(args[1])
            elif key == "package":
                spent["package_s"] += seconds
    return wrapper
networks.predict = timed(networks.predict, "predict")
training.fit_network = timed(training.fit_network, "fit")
training.write_artefact = timed(training.write_artefact, "package")

# The same work at every count: each epoch stops after --steps batches of its shuffle of the whole
# split (Keras's own set_max_steps_per_epoch would cap the validation scoring too).
options = json.loads(sys.argv[1])
steps = options.pop("steps")
make_batches = fitting.batches
def capped(*args, **kwargs):
    data = make_batches(*args, **kwargs)
    data.steps = min(data.steps, steps)
    return data
fitting.batches = capped
started = time.perf_counter()
version = registry.train_and_register(TrainConfig(**options), verbosity=0)
wall = time.perf_counter() - started
fits = version.metrics["training"]["fits"]
print(json.dumps({
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "peak_anon_mb": peak["anon_mb"],
    "wall_s": wall,
    "fit_s": sum(f["seconds"] for f in fits.values()),
    "fits": len(fits),
    **spent,
}))
"""


def run_one(data_dir, work, args):
    """Train once on ``data_dir`` in a fresh process; its figures."""
    options = {
        "size": args.size, "alpha": 0.25, "epochs": args.epochs, "patience": args.epochs, "batch_size": args.batch_size,
        "folds": args.folds, "data_dir": str(data_dir), "name": "scale", "steps": args.steps,
    }
    home = Path(tempfile.mkdtemp(prefix="django-", dir=work))
    env = django_env(home, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    done = subprocess.run(
        [PYTHON, "-c", CHILD, json.dumps(options)], env=env, cwd=REPO, capture_output=True, text=True, check=False
    )
    shutil.rmtree(home, ignore_errors=True)
    if done.returncode:
        sys.exit(f"Training on {data_dir} failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    trained = args.steps * args.batch_size * args.epochs * figures["fits"]
    # Scoring inside the fits (validation each epoch); the out-of-fold scoring of an ensemble comes after.
    figures["train_images_per_s"] = trained / max(1e-9, figures["fit_s"] - figures["validation_s"])
    return figures


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.train_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[11212, 112120], help="Images in each synthetic dataset.")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40, help="Batches per epoch (the cap).")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--folds", type=int, default=1)
    parser.add_argument("--work", type=Path, default=None, help="Keep the data here (default: a temporary folder, removed).")
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures to this file.")
    args = parser.parse_args()

    info = machine()
    print(machine_line(info))
    work = args.work or Path(tempfile.mkdtemp(prefix="train-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    rows, results = [], []
    try:
        for count in args.counts:
            started = time.perf_counter()
            data_dir = work / f"data-{count}-{args.size}px"
            write_dataset(data_dir, count, args.size)
            written = time.perf_counter() - started
            figures = run_one(data_dir, work, args)
            figures.update(count=count, write_s=written, pixels_gb=count * args.size**2 / 1e9)
            results.append(figures)
            rows.append([
                f"{count:,}", f"{figures['pixels_gb']:.2f}", f"{written:.0f}", f"{figures['peak_rss_mb']:.0f}",
                f"{figures['peak_anon_mb']:.0f}", f"{figures['fit_s']:.0f}", f"{figures['validation_s']:.0f}",
                f"{figures['package_s']:.0f}", f"{figures['wall_s']:.0f}", f"{figures['train_images_per_s']:.0f}",
                f"{figures['scored_images'] / max(1e-9, figures['validation_s'] + figures['other_scoring_s']):.0f}",
            ])
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(
        f"{args.size} px, MobileNet alpha 0.25, folds {args.folds}, {args.epochs} epochs of {args.steps} batches of "
        f"{args.batch_size}, validation scored on the whole val split each epoch."
    )
    print(table(rows, [
        "images", "pixels GB", "write s", "peak RSS MB", "peak anon MB", "fit s", "of which val s", "package s",
        "total s", "train img/s", "scoring img/s",
    ]))
    print(
        "fit s: the fits (training steps, validation scoring each epoch, checkpoints); package s: export, "
        "thresholds on the served graph's val scores, input guard, registration. train img/s excludes the "
        "validation scoring."
    )
    print(machine_line(machine()))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "options": vars(args) | {"work": str(work)}, "runs": results},
                                        indent=2, default=str))


if __name__ == "__main__":
    main()
