"""The on-disk format of preprocessed training data, shared by preprocess, balance and train.

``manage.py preprocess`` writes a directory (default ``DISPREDO_MLTRAIN_DIR/preprocessed``)::

    manifest.json             format_version, size, findings, seed, source (the data folder, or
                              a list of them), sources, split_method, missing_images,
                              images_found, splits (count, patients, per_finding, no_finding
                              for each split)
    {split}_pixels.npy        uint8 [N, S, S]   the pixels of dispredo_core.imaging.to_model_pixels
    {split}_labels.npy        uint8 [N, 14]     0/1 in FINDINGS order; "No Finding" is all zeros
    {split}_patients.npy      int64 [N]         Patient ID (NIH's, or an export's pseudonym)
    {split}_names.npy         unicode [N]       Image Index, e.g. "00000013_005.png"
    {split}_source_sizes.npy  int32 [N]         width of the image file on disk (64, 256, 1024...)
    {split}_sources.npy       uint16 [N]        the data folder of each image: its position in the
                                                manifest's "sources" (name, path, kind "nih" or
                                                "dispredo-readings", split_method, images,
                                                patients, missing_images, splits)
    class_frequency.png       count of each finding per split

for ``split`` in ``SPLITS``. No patient is in two splits. Names may repeat across data folders:
an image is (source, name). Data preprocessed before several folders were taken has no
``sources`` and no ``{split}_sources.npy``; ``load_sources`` reads it as one source.
``manage.py balance`` adds ``balanced/`` with ``{finding}_pixels.npy`` uint8 [M, S, S],
``{finding}_labels.npy`` uint8 [M] and ``balance_report.json``, built from the training split only.

Arrays are plain ``.npy`` files, opened memory-mapped, so training on the full dataset
(112,120 images) never holds every image in memory. Both directories are written to a
temporary sibling and renamed when complete: a directory with a readable manifest is a
finished one.
"""

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
from django.conf import settings

from dispredo_core.findings import FINDINGS

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
ARRAYS = ("pixels", "labels", "patients", "names", "source_sizes")
SOURCES_ARRAY = "sources"  # optional: older preprocessed data lacks it (see load_sources)
MANIFEST_FILE = "manifest.json"
CHART_FILE = "class_frequency.png"
BALANCED_DIR = "balanced"
BALANCE_REPORT_FILE = "balance_report.json"


class DatasetError(Exception):
    """Preprocessed data that is missing, incomplete or of an unknown format."""


class Split(NamedTuple):
    pixels: np.ndarray  # uint8 [N, S, S]
    labels: np.ndarray  # uint8 [N, 14], FINDINGS order
    patients: np.ndarray  # int64 [N]
    names: np.ndarray  # unicode [N]
    source_sizes: np.ndarray  # int32 [N]


def default_directory():
    """Where preprocess writes and balance and train read by default."""
    return Path(settings.DISPREDO_MLTRAIN_DIR) / "preprocessed"


def array_path(directory, split, array):
    """The file of one array of one split, e.g. ``train_pixels.npy``."""
    return Path(directory) / f"{split}_{array}.npy"


def read_manifest(directory):
    """The validated manifest of the preprocessed data in ``directory``; raises ``DatasetError``."""
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DatasetError(
            f"No preprocessed data in {directory} (missing {MANIFEST_FILE}). "
            "Run manage.py preprocess --data-dir <NIH folder> first."
        ) from exc
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path} is not valid JSON: {exc}.") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DatasetError(
            f"Preprocessed data in {directory} has format version {manifest.get('format_version')!r}; "
            f"this Dispredo reads version {FORMAT_VERSION}. Run manage.py preprocess again."
        )
    if list(manifest.get("findings", [])) != list(FINDINGS):
        raise DatasetError(
            f"Preprocessed data in {directory} does not label the 14 findings in order. "
            "Run manage.py preprocess again."
        )
    return manifest


def load_split(directory, split, mmap=True):
    """The arrays of one split; memory-mapped read-only unless ``mmap`` is false."""
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {', '.join(SPLITS)}.")
    mode = "r" if mmap else None
    arrays = {}
    for array in ARRAYS:
        path = array_path(directory, split, array)
        try:
            arrays[array] = np.load(path, mmap_mode=mode, allow_pickle=False)
        except FileNotFoundError as exc:
            raise DatasetError(f"Preprocessed data in {directory} is incomplete: {path.name} is missing.") from exc
    return Split(**arrays)


class SplitSources(NamedTuple):
    """Where each image of one split came from."""

    index: np.ndarray  # int [N]: position in ``sources``
    sources: list  # the manifest's "sources" entries (name, path, kind, ...)

    def kinds(self):
        """The kind of each image's data folder ("nih" or "dispredo-readings"), unicode [N]."""
        return np.array([source["kind"] for source in self.sources], dtype=str)[self.index]

    def names(self):
        """The name of each image's data folder, unicode [N]."""
        return np.array([source["name"] for source in self.sources], dtype=str)[self.index]


def load_sources(directory, split):
    """The data folder of each image of ``split``; data preprocessed before several folders were
    taken reads as one source, the folder in its manifest's "source"."""
    manifest = read_manifest(directory)
    names = load_split(directory, split).names
    path = array_path(directory, split, SOURCES_ARRAY)
    if "sources" in manifest and path.is_file():
        return SplitSources(np.load(path, allow_pickle=False).astype(np.int64), manifest["sources"])
    source = str(manifest.get("source", ""))
    only = {
        "name": Path(source).name or "data",
        "path": source,
        "kind": "nih",
        "split_method": manifest.get("split_method", ""),
        "images": manifest.get("images_found", 0),
    }
    return SplitSources(np.zeros(len(names), dtype=np.int64), [only])


def balanced_directory(directory):
    """The ``balanced/`` folder of a preprocessed directory."""
    return Path(directory) / BALANCED_DIR


def load_balanced(directory, finding):
    """``(pixels uint8 [M, S, S], labels uint8 [M])`` of the balanced training set of ``finding``.

    ``directory`` is the preprocessed directory (its ``balanced/`` folder is read) or that
    ``balanced/`` folder itself. Arrays are memory-mapped read-only.
    """
    if finding not in FINDINGS:
        raise ValueError(f"Unknown finding {finding!r}; expected one of {', '.join(FINDINGS)}.")
    directory = Path(directory)
    if (directory / BALANCED_DIR).is_dir():
        directory = directory / BALANCED_DIR
    pixels_path = directory / f"{finding}_pixels.npy"
    labels_path = directory / f"{finding}_labels.npy"
    if not pixels_path.is_file() or not labels_path.is_file():
        raise DatasetError(
            f"No balanced training set for {finding} in {directory}. Run manage.py balance first "
            f"(see {BALANCE_REPORT_FILE} there if it ran: a finding without positive training images is skipped)."
        )
    return (
        np.load(pixels_path, mmap_mode="r", allow_pickle=False),
        np.load(labels_path, mmap_mode="r", allow_pickle=False),
    )
