"""What every artefact carries besides its networks: scores of patients it did not train on, the
reliability and operating point they give (``dispredo_core.reliability``), and the input guard fitted
on its training images (``dispredo_core.guard``). ``package.write_artefact`` adds them to each new
artefact; ``mltrain.retrofit`` to one made before they existed.
"""

from pathlib import Path

import numpy as np

from dispredo_core.reliability import holdout_metadata
from dispredo_core.serving import GUARD_FILE

from . import dataset
from .guard import GuardError
from .guard import fit as fit_guard
from .metrics import json_safe
from .rows import Rows


def artefact_extras(directory, probabilities, labels, patients, description, training_pixels, training_patients):
    """Write the holdout scores and the input guard (fitted on ``guard_sample`` of the training
    images) into ``directory``; return their metadata entries."""
    extras = holdout_metadata(directory, probabilities, labels, patients, description)
    try:
        guard = fit_guard(*guard_sample(training_pixels, training_patients))
    except GuardError as exc:
        # Too few training images to say what an X-ray looks like: uploads go unscreened, and the
        # artefact says why.
        extras["guard"], extras["guard_not_fitted"] = None, str(exc)
    else:
        guard.save(Path(directory) / GUARD_FILE)
        extras["guard"] = guard.description()
    return json_safe(extras)


# The guard is fitted on at most this many training pixels (4,096 images at 128 px): its fit holds
# several float copies of its images, so a cap keeps its memory bounded whatever the dataset's size.
GUARD_PIXELS = 4096 * 128 * 128


def guard_sample(pixels, patients, max_pixels=GUARD_PIXELS, seed=0):
    """``(pixels, patients)`` the input guard is fitted on, read from ``pixels`` (an array, memory map
    or ``Rows``): every image when they hold at most ``max_pixels`` pixels, else that many pixels'
    worth of images drawn at random with ``seed``, in file order. Only the images drawn are read."""
    patients = np.asarray(patients)
    cap = max(1, max_pixels // int(np.prod(pixels.shape[1:])))
    if len(pixels) <= cap:
        return np.asarray(pixels), patients
    chosen = np.sort(np.random.default_rng(seed).choice(len(pixels), cap, replace=False))
    return np.asarray(pixels[chosen]), patients[chosen]


def training_images(data_dir, pooled):
    """``(pixels, patients)`` of the images a model trained on: train + val for an ensemble, else
    train; the pixels a ``Rows`` over the memory maps, read only when indexed."""
    splits = ["train", "val"] if pooled else ["train"]
    loaded = [dataset.load_split(data_dir, split) for split in splits]
    return Rows([s.pixels for s in loaded]), np.concatenate([s.patients for s in loaded])
