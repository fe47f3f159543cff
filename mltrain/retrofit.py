"""Add what new artefacts carry (``mltrain.holdout``) to a cross-validated ensemble made before
they existed (``manage.py holdout``): its out-of-fold scores are rebuilt from the recorded folds on
the data it was trained on, and its networks are untouched.
"""

import json
import os
import tempfile
from pathlib import Path

from diagnosis.artefact import METADATA_FILE, read_metadata
from diagnosis.registry import register_model_version

from . import calibration
from .holdout import artefact_extras
from .recalibration import check_same_data, require_ensemble
from .registry import artefact_directory
from .training import fold_means, load_keras_models, member_fold, out_of_fold, pooled_folds, predict


def ensemble_out_of_fold(directory, metadata, pooled):
    """Each pooled image scored by the members that left its fold out, calibrated as served."""
    from .baselines import hog
    from .hybrid import HOG_FILE, load_members, network_logits

    networks = load_keras_models(directory, metadata)
    folds = pooled["folds"]
    masks = [pooled["fold_of"] == fold for fold in range(folds)]
    member_folds = [member_fold(index, folds) for index in range(len(networks))]
    if metadata.get("hog"):
        members = load_members(Path(directory) / metadata["hog"].get("file", HOG_FILE))
        features = hog(pooled["pixels"])
        scores = []
        for network, member, fold in zip(networks, members, member_folds):
            pixels = pooled["pixels"][masks[fold]]
            r = member.combine(network_logits(network, pixels), features[masks[fold]] @ member.weights + member.biases)
            scores.append(calibration.sigmoid(member.slopes * r + member.intercepts))
    else:
        # A calibrated ensemble's heads carry their calibration; an uncalibrated one is scored raw.
        scores = [predict([network], pooled["pixels"][masks[fold]]) for network, fold in zip(networks, member_folds)]
    return out_of_fold(pooled, fold_means(scores, member_folds, folds))


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
