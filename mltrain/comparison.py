"""Two registered model versions compared on the same preprocessed images (``manage.py compare``).

Both versions' served ONNX graphs score the images of one split of a preprocessed folder, keeping
only the patients that NEITHER version trained on or selected its model with (their artefacts'
patients.json "train" and "val" lists), so neither is flattered by images it has seen. The
figures are ``dispredo_core.comparison.compare_scores``: per finding AUROC of each, the
difference with a paired 95 % patient-bootstrap interval, and the mean over the findings with
both classes. Runs in the web app's ONNX Runtime path: no TensorFlow.
"""

from pathlib import Path

import numpy as np
from PIL import Image

from diagnosis.lifecycle.models import ModelVersion
from diagnosis.lifecycle.predictors import predictor_for
from dispredo_core.comparison import compare_scores, trained_patients
from dispredo_core.imaging import to_model_pixels

from . import dataset


class ComparisonError(Exception):
    """The comparison cannot be made honestly or at all; the message says why and what to do."""


def _pixels_for(predictor, pixels, data_size, name):
    """The split's pixels at the version's own input size: as they are, or reduced with the
    upload path's resize when the data is larger. Larger inputs than the data cannot be made up."""
    size = predictor.input_size
    if size == data_size:
        return pixels, None
    if size > data_size:
        raise ComparisonError(
            f"Model {name} takes {size} px images but the data is {data_size} px. Run manage.py preprocess "
            f"--size {size} (or larger) --out <folder> and pass --data <folder>."
        )
    resized = np.stack([to_model_pixels(Image.fromarray(np.asarray(image)), size) for image in pixels])
    return resized, f"{name} scored at its own {size} px, reduced from the data's {data_size} px."


def compare_versions(candidate, against=None, data_dir=None, split="test"):
    """Compare the ModelVersion ``candidate`` with ``against`` (default: the active version) on
    ``split`` of the preprocessed folder ``data_dir``. Returns ``{"candidate", "against", "split",
    "data_directory", "comparison", "left_out": {"images", "patients"}, "notes"}``; raises
    ``ComparisonError`` (and ``DatasetError``, ``ArtefactError`` from what it reads)."""
    if split not in dataset.SPLITS:
        raise ComparisonError(f"Unknown split {split!r}; expected one of {', '.join(dataset.SPLITS)}.")
    against = against or ModelVersion.active()
    if against is None:
        raise ComparisonError("No model version is active; name the one to compare against with --against.")
    if against.pk == candidate.pk:
        raise ComparisonError(f"{candidate.name} would be compared with itself; name another version with --against.")
    data_dir = Path(data_dir) if data_dir else dataset.default_directory()
    manifest = dataset.read_manifest(data_dir)
    data = dataset.load_split(data_dir, split)
    patients = np.asarray(data.patients)

    excluded, notes = set(), []
    for version in (candidate, against):
        recorded = trained_patients(version)
        if recorded is None:
            notes.append(f"{version.name} records no training patients (no patients.json): none were left out for it.")
        excluded |= recorded or set()
    keep = ~np.isin(patients, np.array(sorted(excluded), dtype=np.int64))
    if not keep.any():
        raise ComparisonError(
            f"No patient is left to compare on: all {len(np.unique(patients))} patients of the {split} split in "
            f"{data_dir} were trained on by {candidate.name} or {against.name} (their patients.json train and "
            "val lists). Compare on patients neither version saw, such as the test split of the data they were "
            "trained on."
        )

    pixels = np.asarray(data.pixels)[keep]
    scores = []
    for version in (candidate, against):
        predictor = predictor_for(version)
        model_pixels, note = _pixels_for(predictor, pixels, int(manifest["size"]), version.name)
        notes += [note] if note else []
        scores.append(predictor.probabilities(model_pixels))
    comparison = compare_scores(np.asarray(data.labels)[keep], scores[0], scores[1], patients[keep])
    return {
        "candidate": candidate.name,
        "against": against.name,
        "split": split,
        "data_directory": str(data_dir),
        "comparison": comparison,
        "left_out": {
            "images": int((~keep).sum()),
            "patients": int(len(np.unique(patients[~keep]))),
        },
        "notes": notes,
    }
