"""The data folders of one preprocess run: NIH ChestX-ray14 downloads and Dispredo exports.

Each folder is in the NIH layout and is read on its own: its label file, the images found, and its
official lists (``train_val_list.txt`` and ``test_list.txt``) if it has them, which then decide the
split of that folder's images; folders without lists are split by patient with the seed. Images
are keyed by (folder, name) internally, since two folders may both have a ``00000001_000.png``.
A Patient ID may be in one folder only, so that the split by patient holds over their union, except
across Dispredo exports, whose stable pseudonyms name the same patient in each.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import nih, splits

# Written by manage.py export_readings beside its label file; it tells an export from an NIH download.
EXPORT_MANIFEST_FILE = "dispredo_export.json"
READINGS_KIND = "dispredo-readings"
NIH_KIND = "nih"


class SourceError(ValueError):
    """A data folder cannot be read, or the folders cannot be used together."""


@dataclass
class Source:
    """One data folder: its images found on disk, in label-file order."""

    name: str  # the folder's name, made unique among the run's folders
    path: Path
    kind: str  # NIH_KIND or READINGS_KIND
    names: list  # Image Index of each image found
    patients: np.ndarray  # int64 [n]
    labels: np.ndarray  # uint8 [n, 14]
    files: list  # path (str) of each image
    listed: int  # rows of the label file
    official: tuple | None  # (train_val names, test names) or None

    @property
    def split_method(self):
        return "grouped" if self.official is None else "official"


def read_source(data_dir, name=None):
    """The folder ``data_dir`` as a ``Source``; raises ``SourceError``."""
    data_dir = Path(data_dir).expanduser().resolve()
    if not data_dir.is_dir():
        raise SourceError(f"The data directory {data_dir} does not exist.")
    try:
        label_file = nih.find_label_file(data_dir)
        entries = nih.read_label_file(label_file)
        official = nih.read_official_split(label_file.parent)
    except nih.NihDataError as exc:
        raise SourceError(str(exc)) from exc
    except OSError as exc:
        raise SourceError(f"Cannot read the NIH files in {data_dir}: {exc}.") from exc

    on_disk = nih.find_images(data_dir)
    rows = np.array([row for row, image in enumerate(entries.names) if image in on_disk], dtype=np.int64)
    if not len(rows):
        folders = "images_*/images/ or images/"
        where = "has none of those folders" if not nih.image_folders(data_dir) else "holds none of them"
        raise SourceError(
            f"None of the {len(entries.names):,} images listed in {label_file.name} is in {data_dir}: "
            f"the NIH layout keeps them in {folders}, and {data_dir} {where}."
        )
    names = [entries.names[row] for row in rows]
    return Source(
        name=name or data_dir.name,
        path=data_dir,
        kind=_kind(data_dir),
        names=names,
        patients=entries.patients[rows],
        labels=entries.labels[rows],
        files=[on_disk[image] for image in names],
        listed=len(entries.names),
        official=official,
    )


def _kind(data_dir):
    path = data_dir / EXPORT_MANIFEST_FILE
    if not path.is_file():
        return NIH_KIND
    try:
        kind = json.loads(path.read_text()).get("source")
    except (OSError, ValueError, AttributeError) as exc:
        raise SourceError(f"{path} cannot be read ({exc}); export the readings again.") from exc
    return kind if kind == READINGS_KIND else NIH_KIND


def read_sources(data_dirs):
    """The ``Source`` of each folder, in the order given; raises ``SourceError`` for a folder given
    twice or a Patient ID found in two folders."""
    sources, names = [], set()
    for data_dir in data_dirs:
        path = Path(data_dir).expanduser().resolve()
        if any(source.path == path for source in sources):
            raise SourceError(f"The data directory {path} is given twice; give each folder once.")
        name, number = path.name or "data", 1
        while name in names:
            number += 1
            name = f"{path.name}-{number}"
        names.add(name)
        sources.append(read_source(path, name))
    _check_patients(sources)
    return sources


def _check_patients(sources):
    # Two Dispredo exports share pseudonyms only for the same patient (an earlier export and a later
    # one with --since): those images are split together by patient. Any other shared ID is a clash.
    for index, first in enumerate(sources):
        for second in sources[index + 1 :]:
            if first.kind == second.kind == READINGS_KIND:
                continue
            shared = np.intersect1d(first.patients, second.patients)
            if len(shared):
                raise SourceError(
                    f"{len(shared)} Patient ID(s) are in both {first.path} and {second.path}, e.g. {shared[0]}: "
                    "a patient's images must all come from one folder, or the split by patient cannot hold. "
                    "Remove them from one folder, or leave one folder out."
                )


def union_split(sources, seed):
    """``(patients, by_split)`` over the images of all ``sources`` (rows in source order): each
    folder's official lists place its own images, the folders without lists are split together
    by patient with ``seed``. Raises ``SourceError``."""
    patients = np.concatenate([source.patients for source in sources])
    train_val, test, free = [], [], []
    offset = 0
    for source in sources:
        rows = np.arange(offset, offset + len(source.names))
        offset += len(source.names)
        if source.official is None:
            free.append(rows)
            continue
        try:
            in_train_val, in_test = splits.official_membership(source.names, source.patients, *source.official)
        except splits.SplitError as exc:
            raise SourceError(f"{source.path}: {exc}" if len(sources) > 1 else str(exc)) from exc
        train_val.append(rows[in_train_val])
        test.append(rows[in_test])
    train_val, test, free = (np.concatenate(rows) if rows else np.zeros(0, np.int64) for rows in (train_val, test, free))
    if not len(free) and not len(test):
        raise SourceError("No image found is in a test_list.txt, so the test split would be empty.")
    if not len(free) and not len(train_val):
        raise SourceError("No image found is in a train_val_list.txt, so the training split would be empty.")
    try:
        return patients, splits.combined_split(patients, train_val, test, free, seed=seed)
    except splits.SplitError as exc:
        raise SourceError(str(exc)) from exc


def source_index(sources):
    """uint16 [N]: the position in ``sources`` of each image of their union."""
    return np.concatenate([np.full(len(source.names), index, dtype=np.uint16) for index, source in enumerate(sources)])


def split_method(sources):
    """"official" or "grouped" when every folder is split the same way, else "mixed"."""
    methods = {source.split_method for source in sources}
    return methods.pop() if len(methods) == 1 else "mixed"


def describe(sources, by_split):
    """The manifest's ``sources`` entries: what each folder is and how many of its images are in each split."""
    index = source_index(sources)
    return [
        {
            "name": source.name,
            "path": str(source.path),
            "kind": source.kind,
            "split_method": source.split_method,
            "images": len(source.names),
            "patients": int(len(np.unique(source.patients))),
            "missing_images": source.listed - len(source.names),
            "splits": {split: int((index[rows] == position).sum()) for split, rows in by_split.items()},
        }
        for position, source in enumerate(sources)
    ]
