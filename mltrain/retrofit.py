"""Add what new artefacts carry (``mltrain.holdout``) to a cross-validated ensemble made before
they existed (``manage.py holdout``): its out-of-fold scores are rebuilt from the recorded folds on
the data it was trained on, and its networks are untouched.
"""

import json
import os
import tempfile
from pathlib import Path

from diagnosis.lifecycle.registry import register_model_version
from dispredo_core.artefact import read_metadata
from dispredo_core.serving import METADATA_FILE

from .folds import check_members, fold_masks, out_of_fold, pooled_folds
from .holdout import artefact_extras
from .members import load_members
from .recalibration import check_same_data, require_ensemble
from .registry import artefact_directory


def ensemble_out_of_fold(directory, metadata, pooled):
    """Each pooled image scored by the member that left its fold out, as served (a calibrated
    ensemble's networks carry their calibration; an uncalibrated one is scored raw)."""
    members = load_members(directory, metadata)
    check_members(members, pooled)
    pixels = pooled["pixels"]
    return out_of_fold(pooled, [member.probabilities(pixels.subset(mask)) for member, mask in zip(members, fold_masks(pooled))])


def annotate(version, data_dir=None):
    """Add holdout scores, reliability, the default operating point and the input guard to the
    artefact of ``version`` (an ensemble trained with ``--folds``), and update the version."""
    directory = artefact_directory(version)
    metadata = read_metadata(directory)
    require_ensemble(
        metadata, "its holdout scores would be the validation split's, which only training records; train it again."
    )
    recorded = metadata["config"]
    data_dir = check_same_data(metadata, data_dir)
    pooled = pooled_folds(data_dir, recorded["folds"], recorded.get("seed", 0))
    probabilities = ensemble_out_of_fold(directory, metadata, pooled)
    description = (
        f"out-of-fold scores of {recorded['folds']} patient-grouped folds of train + val "
        f"({len(pooled['labels'])} images), each scored by the members that never saw its patient"
    )
    extras = artefact_extras(
        directory, probabilities, pooled["labels"], pooled["patients"], description, pooled["pixels"], pooled["patients"]
    )
    metadata.update(extras)
    handle, temporary = tempfile.mkstemp(prefix=".metadata-", dir=directory)
    with os.fdopen(handle, "w") as stream:
        stream.write(json.dumps(metadata, indent=2, sort_keys=True))
    os.replace(temporary, Path(directory) / METADATA_FILE)
    return register_model_version(directory, name=version.name)
