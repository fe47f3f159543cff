"""Small NIH data folders built in tmp_path from the real sample (never from copies in the repository),
and label files written in the dataset's layout.

The sample is read from ``DISPREDO_NIH_SAMPLE`` or ``../shared/data/nih-sample`` beside the
repository; tests that need it skip, saying so, when it is absent (``mltrain/conftest.py``).
"""

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SAMPLE = Path(os.environ.get("DISPREDO_NIH_SAMPLE") or REPO.parent / "shared" / "data" / "nih-sample")
LABEL_FILE = "Data_Entry_2017.csv"
ABSENT = "00000100_000.png"  # listed in the label file, not in the sample
# The label file's header as NIH publishes it (the bracketed names hold commas, so 11 fields).
HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
).split(",")


class NihSample:
    """The real sample: its label file's rows and where each image is, by Image Index."""

    def __init__(self, root):
        self.root = root
        with open(root / LABEL_FILE, newline="") as handle:
            reader = csv.reader(handle)
            self.header = next(reader)
            self.rows = {row[0]: row for row in reader}
        self.paths = {path.name: path for path in sorted(root.glob("images_*/images/*.png"))}
        self._formats = {}

    def format(self, name):
        """``(mode, width)`` of an image, read from its header only."""
        if name not in self._formats:
            with Image.open(self.paths[name]) as image:
                self._formats[name] = (image.mode, image.width)
        return self._formats[name]

    def pick(self, width, count, mode=None):
        """The first ``count`` image names (by name) of that width (and mode)."""
        names = [
            name
            for name in self.paths
            if self.format(name)[1] == width and (mode is None or self.format(name)[0] == mode)
        ]
        return names[:count]

    def build(self, directory, names, extra=(), absent=(ABSENT,), label_file=LABEL_FILE, flat=False):
        """A data folder in the NIH layout with ``names`` copied in and their label rows.

        ``extra``: ``(row, pil_image)`` pairs for made-up images (other modes); ``absent``:
        names listed in the label file but not copied.
        """
        directory.mkdir(parents=True, exist_ok=True)
        rows = []
        for name in names:
            folder = directory / ("images" if flat else self.paths[name].parent.parent.name + "/images")
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.paths[name], folder / name)
            rows.append(self.rows[name])
        for row, image in extra:
            folder = directory / ("images" if flat else "images_012/images")
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / row[0])
            rows.append(row)
        rows.extend(self.rows[name] for name in absent)
        write_label_file(directory / label_file, self.header, sorted(rows))
        return directory


def write_label_file(path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def point_at_label_file(data_dir, source, rows):
    """Make ``source`` an NIH folder whose label file has ``rows``, and the preprocessed ``data_dir``'s
    manifest say it came from there."""
    source.mkdir()
    write_label_file(source / LABEL_FILE, HEADER, rows)
    manifest = json.loads((data_dir / "manifest.json").read_text())
    manifest["source"] = str(source)
    (data_dir / "manifest.json").write_text(json.dumps(manifest))


def made_up_row(name, labels, patient, width):
    return [name, labels, "0", str(patient), "50", "F", "PA", str(width), str(width), "0.143", "0.143"]


def build_small(directory, nih_sample):
    """A mixed data folder: the 3 RGBA and 1 grayscale 1024 px originals, 256 and 64 px images
    (patients with several images among them), an RGB and a 16-bit image, and one listed image
    that is absent: 42 images found of 43 listed."""
    names = (
        nih_sample.pick(1024, 3, mode="RGBA")
        + nih_sample.pick(1024, 1, mode="L")
        + nih_sample.pick(256, 12)
        + nih_sample.pick(64, 24)
    )
    base = np.asarray(Image.open(nih_sample.paths[nih_sample.pick(256, 1)[0]]), dtype=np.uint16)
    rgb = Image.fromarray(base.astype(np.uint8)).convert("RGB")
    sixteen_bit = Image.fromarray(base * 257 + 300)  # mode I;16
    extra = [
        (made_up_row("99990001_000.png", "Effusion|Mass", 99990001, 256), rgb),
        (made_up_row("99990002_000.png", "No Finding", 99990002, 256), sixteen_bit),
    ]
    return nih_sample.build(directory, names, extra=extra)
