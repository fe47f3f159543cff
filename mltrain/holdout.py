"""What every artefact carries besides its networks: scores of patients it did not train on, the
reliability and operating point they give (``diagnosis.reliability``), and the input guard fitted
on its training images (``diagnosis.guard``). ``package.write_artefact`` adds them to each new
artefact; ``mltrain.retrofit`` to one made before they existed.
"""

from pathlib import Path

import numpy as np

from diagnosis.reliability import holdout_metadata
from diagnosis.serving import GUARD_FILE

from . import dataset
from .guard import GuardError
from .guard import fit as fit_guard
from .metrics import json_safe


def artefact_extras(directory, probabilities, labels, patients, description, training_pixels, training_patients):
    """Write the holdout scores and the input guard into ``directory``; return their metadata entries."""
    extras = holdout_metadata(directory, probabilities, labels, patients, description)
    try:
        guard = fit_guard(np.asarray(training_pixels), np.asarray(training_patients))
    except GuardError as exc:
        # Too few training images to say what an X-ray looks like: uploads go unscreened, and the
        # artefact says why.
        extras["guard"], extras["guard_not_fitted"] = None, str(exc)
    else:
        guard.save(Path(directory) / GUARD_FILE)
        extras["guard"] = guard.description()
    return json_safe(extras)


def training_images(data_dir, pooled):
    """``(pixels, patients)`` of the images a model trained on: train + val for an ensemble, else train."""
    splits = ["train", "val"] if pooled else ["train"]
    loaded = [dataset.load_split(data_dir, split) for split in splits]
    return np.concatenate([s.pixels for s in loaded]), np.concatenate([s.patients for s in loaded])
