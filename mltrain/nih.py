"""Reading NIH ChestX-ray14 in its own published layout.

    Data_Entry_2017.csv (or Data_Entry_2017_v2020.csv)   one row per image: Image Index,
                              Finding Labels ('|'-separated, 'No Finding' when none), Patient ID...
    images_001/images/*.png ... images_012/images/*.png   the images (or one flat images/ folder)
    train_val_list.txt, test_list.txt                     the official patient-wise split (optional)

Nothing here needs Django: ``load_pixels`` runs in worker processes.
"""

import csv
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from dispredo_core.findings import FINDINGS, NO_FINDING
from dispredo_core.imaging import to_model_pixels

# The 2020 revision first: where both are present it holds the corrected labels.
LABEL_FILES = ("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv")
TRAIN_VAL_LIST = "train_val_list.txt"
TEST_LIST = "test_list.txt"

IMAGE_COLUMN = "Image Index"
LABELS_COLUMN = "Finding Labels"
PATIENT_COLUMN = "Patient ID"
REQUIRED_COLUMNS = (IMAGE_COLUMN, LABELS_COLUMN, PATIENT_COLUMN)
ATTRIBUTE_COLUMNS = ("Patient Age", "Patient Gender", "View Position")
# The label file has a few impossible ages (over 400); anything above this is clipped.
MAX_AGE = 100

_FINDING_INDEX = {name: index for index, name in enumerate(FINDINGS)}


class NihDataError(ValueError):
    """The NIH files are missing or not in the published format."""


class Entries(NamedTuple):
    """The rows of the label file, in file order."""

    names: list  # Image Index, e.g. "00000013_005.png"
    labels: np.ndarray  # uint8 [R, 14], FINDINGS order
    patients: np.ndarray  # int64 [R]


def find_label_file(data_dir):
    """The label file in ``data_dir``; raises ``NihDataError`` when there is none."""
    data_dir = Path(data_dir)
    for name in LABEL_FILES:
        path = data_dir / name
        if path.is_file():
            return path
    raise NihDataError(
        f"No NIH label file in {data_dir}: expected {LABEL_FILES[1]} (or {LABEL_FILES[0]}). "
        "Point --data-dir at the folder of the NIH ChestX-ray14 download."
    )


def parse_labels(text, line, image, file_name):
    """The 0/1 vector (FINDINGS order) of one 'Finding Labels' cell; ``line`` is for the error."""
    vector = np.zeros(len(FINDINGS), dtype=np.uint8)
    labels = [label.strip() for label in text.split("|")]
    if labels == [NO_FINDING]:
        return vector
    for label in labels:
        if label == NO_FINDING:
            raise NihDataError(
                f"{file_name} line {line} ({image}) combines '{NO_FINDING}' with findings: {text!r}."
            )
        if label not in _FINDING_INDEX:
            shown = repr(label) if label else "an empty label"
            raise NihDataError(
                f"{file_name} line {line} ({image}) has the unknown finding {shown}. "
                f"Known findings: {', '.join(FINDINGS)}; '{NO_FINDING}' for none."
            )
        vector[_FINDING_INDEX[label]] = 1
    return vector


def read_label_file(path):
    """Every row of the label file at ``path`` as ``Entries``; raises ``NihDataError``.

    Line numbers in errors count the header as line 1, as an editor shows them.
    """
    path = Path(path)
    names, codes, patients = [], [], []
    seen = {}
    vectors = {}  # each distinct 'Finding Labels' text (a few hundred in NIH) parsed once
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [column.strip() for column in next(reader, [])]
        missing = [column for column in REQUIRED_COLUMNS if column not in header]
        if missing:
            raise NihDataError(
                f"{path.name} lacks the column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(repr(column) for column in missing)}; the NIH label file has "
                f"{', '.join(repr(column) for column in REQUIRED_COLUMNS)}."
            )
        image_at, labels_at, patient_at = (header.index(column) for column in REQUIRED_COLUMNS)
        needed = max(image_at, labels_at, patient_at)
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) <= needed:
                raise NihDataError(f"{path.name} line {line} has {len(row)} fields; the header has {len(header)}.")
            image = row[image_at].strip()
            if not image:
                raise NihDataError(f"{path.name} line {line} has no {IMAGE_COLUMN}.")
            if image in seen:
                raise NihDataError(f"{path.name} line {line} repeats {image} (first on line {seen[image]}).")
            seen[image] = line
            try:
                patient = int(row[patient_at])
            except ValueError:
                raise NihDataError(
                    f"{path.name} line {line} ({image}) has the {PATIENT_COLUMN} {row[patient_at]!r}; "
                    "expected a whole number."
                ) from None
            text = row[labels_at]
            if text not in vectors:
                vectors[text] = (len(vectors), parse_labels(text, line, image, path.name))
            codes.append(vectors[text][0])
            names.append(image)
            patients.append(patient)
    if not names:
        raise NihDataError(f"{path.name} lists no images.")
    table = np.stack([vector for _, vector in vectors.values()])
    return Entries(names, table[np.asarray(codes, dtype=np.int64)], np.asarray(patients, dtype=np.int64))


def read_image_attributes(path, names):
    """What the label file records of each image in ``names``, as float32 [N, 3]: age in years
    (clipped to 0..MAX_AGE), male (0/1) and anteroposterior view (0/1; 0 for PA). Raises
    ``NihDataError`` for a missing column, an unlisted image or an unreadable value."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [column.strip() for column in next(reader, [])]
        missing = [column for column in (IMAGE_COLUMN, *ATTRIBUTE_COLUMNS) if column not in header]
        if missing:
            raise NihDataError(f"{path.name} lacks the column(s) {', '.join(repr(column) for column in missing)}.")
        image_at = header.index(IMAGE_COLUMN)
        age_at, sex_at, view_at = (header.index(column) for column in ATTRIBUTE_COLUMNS)
        wanted = set(names)
        rows = {}
        for line, row in enumerate(reader, start=2):
            if row and row[image_at].strip() in wanted:
                image = row[image_at].strip()
                try:
                    age = min(max(float(row[age_at]), 0.0), MAX_AGE)
                except ValueError:
                    raise NihDataError(f"{path.name} line {line} ({image}) has the age {row[age_at]!r}.") from None
                sex, view = row[sex_at].strip().upper(), row[view_at].strip().upper()
                if sex not in ("M", "F") or view not in ("AP", "PA"):
                    raise NihDataError(
                        f"{path.name} line {line} ({image}) has gender {sex!r} and view {view!r}; expected M/F and AP/PA."
                    )
                rows[image] = (age, float(sex == "M"), float(view == "AP"))
    absent = [name for name in names if name not in rows]
    if absent:
        raise NihDataError(f"{path.name} does not list {len(absent)} of the images, e.g. {absent[0]}.")
    return np.asarray([rows[name] for name in names], dtype=np.float32).reshape(len(names), 3)


def image_folders(data_dir):
    """The folders that may hold images: ``images_*/images/`` (the NIH archives), then ``images/``."""
    data_dir = Path(data_dir)
    folders = sorted(path for path in data_dir.glob("images_*/images") if path.is_dir())
    if (data_dir / "images").is_dir():
        folders.append(data_dir / "images")
    return folders


def find_images(data_dir):
    """``{file name: path (str)}`` of every file in the image folders (the first one wins on a clash)."""
    found = {}
    for folder in image_folders(data_dir):
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name not in found and entry.is_file():
                    found[entry.name] = entry.path  # a str: a Path per image costs several times more
    return found


def read_image_list(path):
    """The image names of an official split list (one per line)."""
    with open(path, encoding="utf-8-sig") as handle:
        return {line.strip() for line in handle if line.strip()}


def read_official_split(directory):
    """``(train_val names, test names)`` from the official lists in ``directory``, or None.

    Only one of the two lists is an error: the split would be silently half official.
    """
    directory = Path(directory)
    train_val, test = directory / TRAIN_VAL_LIST, directory / TEST_LIST
    if not train_val.is_file() and not test.is_file():
        return None
    if not train_val.is_file() or not test.is_file():
        present, absent = (train_val, test) if train_val.is_file() else (test, train_val)
        raise NihDataError(
            f"{directory} has {present.name} but not {absent.name}: put both official lists "
            "beside the label file, or neither for a split by patient with --seed."
        )
    return read_image_list(train_val), read_image_list(test)


def load_pixels(task):
    """Worker: ``(key, path, size)`` -> ``(key, pixels uint8 [size, size], width on disk, error)``.

    A module-level function that needs no Django, for a process pool. A file that cannot be
    decoded comes back with ``pixels`` None and the reason in ``error``.
    """
    key, path, size = task
    try:
        with Image.open(path) as image:
            width = image.width
            pixels = to_model_pixels(image, size)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return key, None, 0, f"{type(exc).__name__}: {exc}"
    return key, pixels, width, None
