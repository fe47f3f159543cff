"""Which NIH sample images a model never saw: the benchmarks and tests that measure it on them share this."""

import csv
import json
from pathlib import Path

import numpy as np

from dispredo_core.findings import FINDINGS, NO_FINDING

# Folders of the sample's first release, which the shipped model's data was split from; images_003
# came later, so none of its images was trained on.
FIRST_RELEASE = ("images_001", "images_002")
LATER_RELEASE = ("images_003",)


def unseen_images(nih_sample, patients_file, later_release=True):
    """``[(path, labels)]`` of the sample images whose patient is not in ``patients_file``'s "train"
    list (the model's patients.json), in the first release's folders, and with ``later_release`` all
    of images_003 too; ``labels`` is a bool array over FINDINGS from the label file."""
    nih_sample = Path(nih_sample)
    trained = set(json.loads(Path(patients_file).read_text())["train"])
    with open(nih_sample / "Data_Entry_2017.csv", newline="") as handle:
        rows = {row["Image Index"]: row for row in csv.DictReader(handle)}
    images = []
    for folder in FIRST_RELEASE + (LATER_RELEASE if later_release else ()):
        for path in sorted((nih_sample / folder / "images").glob("*.png")):
            row = rows[path.name]
            if folder in FIRST_RELEASE and int(row["Patient ID"]) in trained:
                continue
            present = set(row["Finding Labels"].split("|")) - {NO_FINDING}
            images.append((path, np.array([name in present for name in FINDINGS])))
    return images
