"""A synthetic full-size NIH ChestX-ray14 layout made of hard links to the NIH sample's images.

    .venv/bin/python -m bench.nih_full_layout DIR                    # every row of the label file
    .venv/bin/python -m bench.nih_full_layout DIR --limit 11212      # the first 11,212 rows only
    .venv/bin/python -m bench.nih_full_layout DIR --images all       # link to every sample image

Every row of the sample's ``Data_Entry_2017.csv`` (it lists all 112,120 images of the full
dataset) gets a file in ``DIR/images_001/images`` ... ``images_012/images``, as the NIH download
distributes them: the rows in Image Index order, 4,999 in ``images_001``, 10,000 in each of
``images_002`` ... ``images_011`` and the rest (7,121) in ``images_012``. Each file is a hard link
(no copy: the layout takes a few MB of directory entries) to a sample image: the image of that
name where the sample has it, otherwise the sample's images in turn. ``--images originals`` (the
default) links only to the sample's 1024 x 1024 originals, the size of every image of the real
download, so that decoding costs what it would there; ``all`` uses every sample image (most of
them 64 or 256 px). The label file is copied beside them. The sample has no official
``train_val_list.txt`` / ``test_list.txt``, so they are generated: whole patients, drawn with a
fixed seed, go to the test list until it holds the official test list's share of images
(25,596 of 112,120); the lists are written in Image Index order like the official ones.

Running it again with the same arguments changes nothing; with others it brings the folder to
the new state (it only ever deletes files in a folder that it built, recorded in
``.nih_full_layout.json``). DIR must be on the sample's filesystem (hard links cannot cross
filesystems). Seconds for the full layout.
"""

import argparse
import csv
import errno
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from bench._common import BenchError, nih_sample, png_size

LABEL_FILE = "Data_Entry_2017.csv"
TRAIN_VAL_LIST = "train_val_list.txt"
TEST_LIST = "test_list.txt"
MARKER = ".nih_full_layout.json"
# Images per folder of the NIH download; the last folder takes every remaining row.
FOLDER_SIZES = (4_999,) + (10_000,) * 10 + (7_121,)
FULL_SIZE = sum(FOLDER_SIZES)  # 112,120
OFFICIAL_TEST_SHARE = 25_596 / FULL_SIZE
ORIGINAL_WIDTH = 1024
LIST_SEED = 18


def read_rows(label_file):
    """``(names, patients)`` of the label file, in Image Index order."""
    with open(label_file, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [column.strip() for column in next(reader)]
        image_at, patient_at = header.index("Image Index"), header.index("Patient ID")
        rows = sorted((row[image_at].strip(), int(row[patient_at])) for row in reader if row)
    return [name for name, _ in rows], np.array([patient for _, patient in rows], dtype=np.int64)


def folder_of_rows(count, folder_sizes=FOLDER_SIZES):
    """The folder number (1-based) of each of ``count`` rows in order; the last folder takes the rest."""
    bounds = np.cumsum(folder_sizes[:-1])
    return np.searchsorted(bounds, np.arange(count), side="right") + 1


def split_lists(names, patients, test_share=OFFICIAL_TEST_SHARE, seed=LIST_SEED):
    """``(train_val names, test names)``: whole patients in a seeded order fill the test list
    until it holds ``test_share`` of the images."""
    unique, counts = np.unique(patients, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(unique))
    taken = np.cumsum(counts[order]) <= round(test_share * len(names))
    test_patients = unique[order[taken]]
    in_test = np.isin(patients, test_patients)
    return [n for n, t in zip(names, in_test) if not t], [n for n, t in zip(names, in_test) if t]


def sample_pool(sample, images):
    """The sample images to link to, by name: the 1024 px originals or all of them."""
    paths = {path.name: path for path in sorted(sample.glob("images_*/images/*.png"))}
    if images == "originals":
        paths = {name: path for name, path in paths.items() if (png_size(path) or (0,))[0] == ORIGINAL_WIDTH}
    if not paths:
        raise BenchError(f"No {'1024 px ' if images == 'originals' else ''}PNG images in {sample}.")
    return paths


def build_layout(
    folder, sample, images="originals", limit=None, folder_sizes=FOLDER_SIZES, progress=print, every=20_000
):
    """Build (or bring up to date) the layout in ``folder``; returns what it did as a dict.

    ``limit`` takes only the first rows (in Image Index order); ``folder_sizes`` is the NIH
    distribution unless a test gives a smaller one. Raises ``BenchError``.
    """
    folder, sample = Path(folder).resolve(), Path(sample).resolve()
    started = time.perf_counter()
    names, patients = read_rows(sample / LABEL_FILE)
    settings = {"sample": str(sample), "images": images, "limit": limit, "folder_sizes": list(folder_sizes)}
    _claim(folder)
    pool = sample_pool(sample, images)
    pool_paths = list(pool.values())
    pool_inodes = {path: os.stat(path).st_ino for path in pool_paths}
    chosen = names[:limit] if limit else names
    folders = folder_of_rows(len(chosen), folder_sizes)
    wanted = {}
    for row, (name, number) in enumerate(zip(chosen, folders)):
        wanted[folder / f"images_{number:03d}" / "images" / name] = pool.get(name) or pool_paths[row % len(pool_paths)]

    linked = kept = removed = 0
    for directory in {path.parent for path in wanted}:
        directory.mkdir(parents=True, exist_ok=True)
    for done, (target, source) in enumerate(wanted.items(), start=1):
        try:
            if os.stat(target).st_ino == pool_inodes[source]:
                kept += 1
                continue
            os.unlink(target)
        except FileNotFoundError:
            pass
        _link(source, target)
        linked += 1
        if progress and done % every == 0:
            progress(f"  {done:,} of {len(wanted):,} images in place")
    for directory in sorted(folder.glob("images_*/images")):
        with os.scandir(directory) as entries:
            for entry in entries:
                if Path(entry.path) not in wanted:
                    os.unlink(entry.path)
                    removed += 1
        if not any(directory.iterdir()):
            directory.rmdir()
            directory.parent.rmdir()

    shutil.copyfile(sample / LABEL_FILE, folder / LABEL_FILE)
    if (sample / TRAIN_VAL_LIST).is_file() and (sample / TEST_LIST).is_file():
        lists = "copied from the sample"
        for name in (TRAIN_VAL_LIST, TEST_LIST):
            shutil.copyfile(sample / name, folder / name)
        train_val, test = ((folder / name).read_text().split() for name in (TRAIN_VAL_LIST, TEST_LIST))
    else:
        lists = "generated by patient (the sample has no official lists)"
        train_val, test = split_lists(names, patients)
        (folder / TRAIN_VAL_LIST).write_text("".join(f"{name}\n" for name in train_val))
        (folder / TEST_LIST).write_text("".join(f"{name}\n" for name in test))
    counts = {f"images_{n:03d}": int(c) for n, c in zip(*np.unique(folders, return_counts=True))}
    summary = {
        **settings,
        "rows": len(names),
        "images": len(wanted),
        "sample_images_used": len(set(wanted.values())),
        "folders": counts,
        "lists": lists,
        "train_val": len(train_val),
        "test": len(test),
        "linked": linked,
        "kept": kept,
        "removed": removed,
        "seconds": round(time.perf_counter() - started, 2),
    }
    (folder / MARKER).write_text(json.dumps(summary, indent=2))
    return summary


def _claim(folder):
    """Make sure ``folder`` is new, empty or a layout this script built (it deletes files there)."""
    if folder.exists() and not folder.is_dir():
        raise BenchError(f"{folder} exists and is not a folder; choose another.")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / MARKER).is_file():
        raise BenchError(f"{folder} holds other files (no {MARKER}); give a new or empty folder.")
    folder.mkdir(parents=True, exist_ok=True)


def _link(source, target):
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            raise BenchError(
                f"{target.parent} is on another filesystem than the sample {source.parent}: hard links cannot "
                "cross filesystems. Give a folder on the sample's filesystem."
            ) from None
        if exc.errno in (errno.EPERM, errno.EACCES):
            raise BenchError(
                f"Cannot hard-link {source} into {target.parent} ({exc.strerror}): the kernel allows links only "
                "to files you own or may write (fs.protected_hardlinks). Run as the sample's owner."
            ) from None
        raise


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.nih_full_layout", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="where to build the layout (on the sample's filesystem)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N rows, in Image Index order")
    parser.add_argument("--images", choices=("originals", "all"), default="originals", help="sample images to link to")
    args = parser.parse_args()
    try:
        summary = build_layout(args.folder, nih_sample(), images=args.images, limit=args.limit)
    except BenchError as exc:
        sys.exit(f"nih_full_layout: {exc}")
    folders = ", ".join(f"{name} {count:,}" for name, count in summary["folders"].items())
    print(
        f"{args.folder}: {summary['images']:,} of {summary['rows']:,} rows linked to {summary['sample_images_used']:,} "
        f"sample images ({summary['kept']:,} already in place, "
        f"{summary['linked']:,} linked, {summary['removed']:,} removed) in {summary['seconds']} s\n"
        f"  {folders}\n"
        f"  {TRAIN_VAL_LIST} {summary['train_val']:,} and {TEST_LIST} {summary['test']:,} images, {summary['lists']}"
    )


if __name__ == "__main__":
    main()
