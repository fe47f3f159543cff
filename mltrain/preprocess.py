"""Data folders in the NIH ChestX-ray14 layout -> memory-mappable training arrays.

``preprocess()`` reads the label file of each folder (``mltrain.sources``: NIH downloads and
clinic exports alike), finds the images, splits them by patient, converts every
image with ``dispredo_core.imaging.to_model_pixels`` (the web upload's own image path) in a pool of
worker processes and writes each image as it comes at its place in pre-allocated ``.npy`` files
(the arrays of ``mltrain.dataset``). Only a bounded number of images is ever in flight, so the
memory of a run does not grow with the number of images beyond their names and labels.
The output is written to a temporary sibling directory and put in place only when complete.
"""

import json
import multiprocessing
import os
import secrets
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dispredo_core.findings import FINDINGS

from . import nih, sources
from .charts import class_frequency_chart
from .dataset import (
    CHART_FILE,
    FORMAT_VERSION,
    MANIFEST_FILE,
    SOURCES_ARRAY,
    SPLITS,
    array_path,
    default_directory,
)

MIN_SIZE = 8
MAX_SIZE = 1024
MAX_CHUNKSIZE = 64  # images a worker takes at once
IN_FLIGHT_CHUNKS = 4  # chunks per worker handed out ahead of the results taken


class PreprocessError(Exception):
    """Preprocessing cannot go on; the message says what to do."""


def available_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def preprocess(data_dir, out=None, size=100, workers=None, seed=42, progress=True, official_split=False):
    """Preprocess the data folders ``data_dir`` (one path, or several) into ``out``; returns the manifest.

    Each folder is in the NIH layout (an NIH download or a ``manage.py export_readings`` folder);
    see ``mltrain.sources`` for how several are split together. ``out`` defaults to
    ``DISPREDO_MLTRAIN_DIR/preprocessed``; ``workers`` to every available core (1 converts in this
    process). ``official_split`` refuses a folder without the official lists rather than split
    it by patient with ``seed``. Raises ``PreprocessError``.
    """
    size, workers, seed = _check_arguments(size, workers, seed)
    data_dirs = [data_dir] if isinstance(data_dir, (str, os.PathLike)) else list(data_dir)
    if not data_dirs:
        raise PreprocessError("Give at least one --data-dir.")
    out = Path(out or default_directory()).expanduser().resolve()
    try:
        folders = sources.read_sources(data_dirs)
        if official_split:
            _require_official_split(folders)
        patients, by_split = sources.union_split(folders, seed)
    except sources.SourceError as exc:
        raise PreprocessError(str(exc)) from exc
    names = [name for folder in folders for name in folder.names]
    labels = np.concatenate([folder.labels for folder in folders])
    files = [path for folder in folders for path in folder.files]
    origin = sources.source_index(folders)

    staging = _make_staging(out, needed_bytes=len(names) * size * size)
    try:
        for split in SPLITS:
            members = by_split[split]
            np.save(array_path(staging, split, "labels"), labels[members])
            np.save(array_path(staging, split, "patients"), patients[members])
            np.save(array_path(staging, split, "names"), np.array([names[i] for i in members], dtype=str))
            np.save(array_path(staging, split, SOURCES_ARRAY), origin[members])
        _convert_images(staging, by_split, files, size, workers, progress)
        paths = [str(folder.path) for folder in folders]
        manifest = {
            "format_version": FORMAT_VERSION,
            "size": size,
            "findings": list(FINDINGS),
            "seed": seed,
            "source": paths[0] if len(paths) == 1 else paths,
            "sources": sources.describe(folders, by_split),
            "split_method": sources.split_method(folders),
            "missing_images": sum(folder.listed - len(folder.names) for folder in folders),
            "images_found": len(names),
            "splits": {split: _summary(labels[by_split[split]], patients[by_split[split]]) for split in SPLITS},
        }
        class_frequency_chart(manifest, staging / CHART_FILE)
        # Last: a directory with a readable manifest is a complete one.
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
        replace_directory(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _check_arguments(size, workers, seed):
    if not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise PreprocessError(
            f"--size must be a whole number of pixels from {MIN_SIZE} to {MAX_SIZE}, not {size!r}."
        )
    if workers is None:
        workers = available_cpus()
    if not isinstance(workers, int) or workers < 1:
        raise PreprocessError(f"--workers must be 1 or more, not {workers!r}.")
    if not isinstance(seed, int) or seed < 0:
        raise PreprocessError(f"--seed must be a whole number 0 or more, not {seed!r}.")
    return size, workers, seed


def _require_official_split(folders):
    for folder in folders:
        if folder.official is None:
            raise PreprocessError(
                f"--official-split: {folder.path} has no {nih.TRAIN_VAL_LIST} and {nih.TEST_LIST}. Put the "
                "official lists of the NIH download beside its label file, or leave out --official-split "
                "for a split by patient."
            )


def _summary(labels, patients):
    return {
        "count": int(len(labels)),
        "patients": int(len(np.unique(patients))),
        "per_finding": {name: int(labels[:, index].sum()) for index, name in enumerate(FINDINGS)},
        "no_finding": int((labels.sum(axis=1) == 0).sum()),
    }


def _make_staging(out, needed_bytes):
    """A new temporary directory beside ``out``; raises ``PreprocessError`` if it cannot be written."""
    if out.exists() and not out.is_dir():
        raise PreprocessError(f"The output {out} exists and is not a directory; choose another --out.")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST_FILE).is_file():
        raise PreprocessError(
            f"The output {out} is a directory with other files in it (no {MANIFEST_FILE}); preprocess "
            "replaces its output as a whole, so choose a new or empty --out."
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = make_sibling(out, "partial")
    except OSError as exc:
        raise PreprocessError(
            f"Cannot write the output {out}: {_reason(exc, out)}. Choose another --out or fix its permissions."
        ) from exc
    free = shutil.disk_usage(staging).free
    if free < needed_bytes * 1.05 + 50_000_000:
        shutil.rmtree(staging, ignore_errors=True)
        raise PreprocessError(
            f"Not enough free disk space for the output {out}: about {needed_bytes / 1e9:.1f} GB needed, "
            f"{free / 1e9:.1f} GB free."
        )
    return staging


def _reason(exc, path):
    """Why ``path`` cannot be written, in words: a file in the way, or the system's reason."""
    for ancestor in (path, *path.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                return f"{ancestor} is a file, not a folder"
            break
    return exc.strerror or str(exc)


def make_sibling(path, purpose):
    """A new empty directory beside ``path`` (``mkdir`` permissions, unlike ``mkdtemp``'s 0700)."""
    while True:
        sibling = path.parent / f".{path.name}.{purpose}-{secrets.token_hex(4)}"
        try:
            sibling.mkdir()
        except FileExistsError:
            continue
        return sibling


def replace_directory(staging, out):
    """Replace the directory ``out`` (if any) with the complete directory ``staging``."""
    previous = None
    if out.exists():
        previous = make_sibling(out, "previous")
        os.replace(out, previous / out.name)
    try:
        os.replace(staging, out)
    except OSError:
        if previous is not None:
            os.replace(previous / out.name, out)
        raise
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)


def _convert_images(staging, by_split, paths, size, workers, progress):
    """Decode and resize every image into the ``{split}_pixels.npy`` files of ``staging``."""
    pixels = {split: PixelFile(array_path(staging, split, "pixels"), len(rows), size) for split, rows in by_split.items()}
    widths = {split: np.zeros(len(rows), dtype=np.int32) for split, rows in by_split.items()}
    tasks = (
        ((split, position), str(paths[row]), size)
        for split, rows in by_split.items()
        for position, row in enumerate(rows)
    )
    total = sum(len(rows) for rows in by_split.values())
    failures = []
    try:
        with tqdm(total=total, unit="img", desc="preprocess", disable=not progress, file=sys.stderr) as bar:
            for (split, position), image, width, error in load_all(tasks, total, workers):
                if error:
                    failures.append(f"{Path(paths[by_split[split][position]]).name} ({error})")
                else:
                    pixels[split].write(position, image)
                    widths[split][position] = width
                bar.update()
    finally:
        for file in pixels.values():
            file.close()
    for split in by_split:
        np.save(array_path(staging, split, "source_sizes"), widths[split])
    if failures:
        raise PreprocessError(
            f"{len(failures)} image(s) could not be read: {'; '.join(failures[:5])}"
            f"{'; ...' if len(failures) > 5 else ''}. "
            "Replace the damaged files (re-extract their archive) and run again."
        )


class PixelFile:
    """A pre-allocated ``uint8 [count, size, size]`` ``.npy`` file written one image at a time at
    its position. Plain writes, not a memory map, so the written images do not stay resident in
    this process: its memory does not grow with the dataset."""

    def __init__(self, path, count, size):
        self.row_bytes = size * size
        with open(path, "wb") as handle:
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False}
            np.lib.format.write_array_header_1_0(handle, {**header, "shape": (count, size, size)})
            self.offset = handle.tell()
            handle.truncate(self.offset + count * self.row_bytes)
        self.fd = os.open(path, os.O_WRONLY)

    def write(self, position, image):
        os.pwrite(self.fd, np.ascontiguousarray(image, dtype=np.uint8).tobytes(), self.offset + position * self.row_bytes)

    def close(self):
        if self.fd is not None:
            os.fsync(self.fd)  # complete on disk before the manifest says so
            os.close(self.fd)
            self.fd = None


def load_all(tasks, total, workers):
    """``nih.load_pixels`` over ``total`` ``tasks``, in this process (1 worker) or a pool, in any order.

    At most ``IN_FLIGHT_CHUNKS`` chunks per worker are handed out ahead of the images taken from
    here, so decoded images cannot pile up in the pool's queues, however many there are.
    """
    workers = min(workers, total)
    if workers <= 1:
        yield from map(nih.load_pixels, tasks)
        return
    chunksize = max(1, min(MAX_CHUNKSIZE, total // (workers * 4)))
    slots, closing = threading.Semaphore(IN_FLIGHT_CHUNKS * workers * chunksize), threading.Event()
    tasks = iter(tasks)

    def handed_out():  # runs in the pool's task thread, which waits here for a free slot
        while slots.acquire() and not closing.is_set():
            task = next(tasks, None)
            if task is None:
                return
            yield task

    # 'spawn': workers start clean, with no copy of Django's state or open database connections.
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        try:
            for result in pool.imap_unordered(nih.load_pixels, handed_out(), chunksize=chunksize):
                slots.release()
                yield result
        finally:
            closing.set()  # an early exit: let the task thread end so that the pool can close
            slots.release()
