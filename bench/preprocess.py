"""Benchmark of ``manage.py preprocess`` on the NIH sample (or any NIH folder).

    .venv/bin/python -m bench.preprocess [--data-dir DIR] [--size 100] [--workers 1 2 ...]

Prints, for 1 worker and for every available core, each run in a fresh process: wall time and
images per second end to end (label file, split, conversion, chart); images per second of the
conversion alone (decode + grayscale + resize of every image file, pool start included); peak
memory of the main process, of the largest worker and of all together. Then the cost of
decoding the 16 original 1024x1024 PNGs alone against the pipeline's own per-image work on them
(decode + grayscale + resize), so the pipeline's speed can be compared with the cost of just
reading the files. Files are read once first, so every figure is with a warm page cache.
Output goes to a temporary folder.
"""

import argparse
import multiprocessing
import os
import resource
import tempfile
import threading
import time
from pathlib import Path

from bench._common import REPO

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dispredo_site.settings")

SAMPLE = Path(os.environ.get("DISPREDO_NIH_SAMPLE") or REPO.parent / "shared" / "data" / "nih-sample")


def _setup():
    import django

    django.setup()


def _peak_rss_mb(pid="self"):
    """VmHWM (peak resident memory since exec) of a process, in MB; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _watch_workers(peaks, stop):
    """Poll the peak memory of this process's children (the pool workers) until ``stop``."""
    while not stop.wait(0.05):
        for child in multiprocessing.active_children():
            peaks[child.pid] = max(peaks.get(child.pid, 0.0), _peak_rss_mb(child.pid))


def _run_preprocess(data_dir, size, workers, results):
    """In a fresh process: one preprocess run; reports wall time and peak memory."""
    _setup()
    from mltrain import nih
    from mltrain.preprocess import load_all, preprocess

    paths = list(nih.find_images(data_dir).values())
    started = time.perf_counter()
    for _ in load_all((((None, index), str(path), size) for index, path in enumerate(paths)), len(paths), workers):
        pass
    convert = time.perf_counter() - started

    peaks, stop = {}, threading.Event()
    watcher = threading.Thread(target=_watch_workers, args=(peaks, stop), daemon=True)
    watcher.start()
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        manifest = preprocess(data_dir, Path(scratch) / "out", size=size, workers=workers, progress=False)
        wall = time.perf_counter() - started
    stop.set()
    watcher.join()
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    results.put(
        {
            "images": manifest["images_found"],
            "convert_rate": len(paths) / convert,
            # CPU seconds of this process and its (joined) pool workers, both runs: conversion and preprocess.
            "cpu": own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime,
            "wall": wall,
            "main_rss": _peak_rss_mb(),
            "worker_rss": max(peaks.values(), default=0.0),
            "workers_rss": sum(peaks.values()),
        }
    )


def measure(data_dir, size, workers):
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_run_preprocess, args=(data_dir, size, workers, results))
    process.start()
    result = results.get()
    process.join()
    return result


def best_of(repeat, function):
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        timings.append(time.perf_counter() - started)
    return min(timings)


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.preprocess", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=SAMPLE)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--workers", type=int, nargs="*", default=None, help="worker counts (default 1 and all cores)")
    parser.add_argument("--repeat", type=int, default=3, help="repeats of the decode timings (best is shown)")
    parser.add_argument(
        "--original-copies", type=int, default=10, help="times each 1024 px original goes through the pool (default 10)"
    )
    args = parser.parse_args()

    _setup()
    from PIL import Image

    from mltrain import nih
    from mltrain.preprocess import available_cpus, load_all

    cores = available_cpus()
    worker_counts = args.workers or sorted({1, cores})
    paths = nih.find_images(args.data_dir)
    for path in paths.values():  # warm the page cache (find_images gives str paths)
        Path(path).read_bytes()
    label_file = nih.find_label_file(args.data_dir)
    csv_seconds = best_of(1, lambda: nih.read_label_file(label_file))

    print(
        f"NIH data: {args.data_dir} ({len(paths):,} images on disk), size {args.size} px, {cores} cores available, "
        f"load average {os.getloadavg()[0]:.1f} before the runs"
    )
    print(f"reading {label_file.name} alone: {csv_seconds:.2f} s")
    print(
        f"{'workers':>7} {'wall s':>8} {'images/s':>9} {'convert images/s':>17} {'CPU s (both)':>13} "
        f"{'main peak MB':>13} {'worker peak MB':>15} {'total peak MB':>14}"
    )
    for workers in worker_counts:
        result = measure(args.data_dir, args.size, workers)
        total = result["main_rss"] + result["workers_rss"]
        print(
            f"{workers:>7} {result['wall']:>8.2f} {result['images'] / result['wall']:>9.0f} "
            f"{result['convert_rate']:>17.0f} {result['cpu']:>13.1f} {result['main_rss']:>13.0f} "
            f"{result['worker_rss']:>15.0f} {total:>14.0f}"
        )

    originals = []
    for path in sorted(paths.values()):
        with Image.open(path) as image:
            if image.size == (1024, 1024):
                originals.append(path)

    def decode():
        for path in originals:
            with Image.open(path) as image:
                image.load()

    def pipeline():
        for path in originals:
            nih.load_pixels((None, str(path), args.size))

    if originals:
        decode_seconds = best_of(args.repeat, decode)
        pipeline_seconds = best_of(args.repeat, pipeline)
        print(
            f"{len(originals)} original 1024x1024 PNGs, 1 process, best of {args.repeat}: "
            f"decode alone {decode_seconds * 1000 / len(originals):.1f} ms/image "
            f"({len(originals) / decode_seconds:.0f} images/s); "
            f"decode + grayscale + resize {pipeline_seconds * 1000 / len(originals):.1f} ms/image "
            f"({len(originals) / pipeline_seconds:.0f} images/s)"
        )
        # Full-dataset-like work (every NIH original is 1024 px): the originals, several times over,
        # through the same conversion as preprocess, with 1 worker and with every core.
        tasks = [((None, index), str(path), args.size) for index, path in enumerate(originals * args.original_copies)]
        for workers in worker_counts:
            started = time.perf_counter()
            for _ in load_all(iter(tasks), len(tasks), workers):
                pass
            seconds = time.perf_counter() - started
            print(
                f"{len(tasks)} conversions of the 1024 px originals with {workers} worker(s), pool start included: "
                f"{len(tasks) / seconds:.0f} images/s"
            )


if __name__ == "__main__":
    main()
