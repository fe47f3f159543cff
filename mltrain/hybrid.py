"""A calibrated cross-validated ensemble joined with HOG + logistic regression, as a new model
version (``manage.py addhog``): the networks are not retrained.

Per fold, the member network is joined by a logistic regression on HOG features fitted on the
same images (``mltrain.hog_member`` says how the two are combined and served). The members are
then calibrated together as a plain ensemble is (``calibration.fit_ensemble``), and thresholds come
from the calibrated out-of-fold scores. The two parts rank images differently (texture learned end
to end, fixed edge statistics), which is why they are joined.
"""

from pathlib import Path

import numpy as np

from dispredo_core.artefact import read_metadata
from dispredo_core.serving import HOG_FILE

from . import calibration
from .config import TrainingError
from .folds import check_members, fold_masks, out_of_fold, pooled_folds, selection_of
from .hog import BINS, CELL, choose_strength, fit_linear, hog
from .hog_member import WEIGHT, HogPart, HybridMember, network_logits, network_weights
from .metrics import json_safe, mean_auroc, per_finding_auroc
from .package import write_artefact
from .recalibration import copy_config


def fit(networks, pooled, strength):
    """HOG parts for the calibrated ensemble ``networks`` on ``pooled`` (``folds.pooled_folds``).

    Returns ``(parts, selection)``: per network its calibrated ``HogPart``, and the selection
    ``write_artefact`` takes, with the out-of-fold mean AUROC of each part alone in ``parts``.
    """
    check_members(networks, pooled)
    labels = pooled["labels"]
    features = hog(pooled["pixels"])
    masks = fold_masks(pooled)
    hog_parts, raw, parts = [], [], {"networks": [], "hog": []}
    for network, mask in zip(networks, masks):
        weights, biases = fit_linear(features[~mask], labels[~mask], strength)
        cnn_logits = network_logits(network, pooled["pixels"].subset(mask))
        hog_logits = features[mask] @ weights + biases
        part = HogPart(
            weights, biases, *calibration.logit_standardiser(hog_logits), *calibration.logit_standardiser(cnn_logits),
            network_weights(cnn_logits),
        )
        hog_parts.append(part)
        raw.append(calibration.sigmoid(part.combine(cnn_logits, hog_logits)))
        parts["networks"].append(cnn_logits)
        parts["hog"].append(hog_logits)
    heads, calibrated, fitted = calibration.fit_ensemble(raw, [labels[mask] for mask in masks])
    for part, (slopes, intercepts) in zip(hog_parts, heads):
        part.slopes, part.intercepts = np.asarray(slopes), np.asarray(intercepts)
    selection = selection_of(pooled, out_of_fold(pooled, calibrated), out_of_fold(pooled, raw), fitted)
    selection["parts"] = {
        f"{part}_out_of_fold_mean_auroc": mean_auroc(per_finding_auroc(labels, out_of_fold(pooled, scores)))
        for part, scores in parts.items()
    }
    return hog_parts, selection


def add_hog(directory, name, data_dir=None, strength=None, name_taken=None, stream=None):
    """A copy of the calibrated ensemble artefact at ``directory`` with a HOG part per network,
    written as ``name``; returns its directory (``name_taken``: as for ``training.train``). ``strength`` (logistic regression C) defaults to the one the baseline
    chooses on the validation split."""
    directory = Path(directory)
    metadata = read_metadata(directory)
    recorded = metadata.get("config", {})
    if metadata.get("hog"):
        raise TrainingError(f"{metadata['name']} already has HOG members.")
    if recorded.get("strategy") != "multilabel" or recorded.get("folds", 1) < 2 or not recorded.get("calibrate"):
        raise TrainingError(
            f"{metadata['name']} is not a calibrated cross-validated multilabel ensemble: HOG members "
            "are fitted on the folds its networks left out (train --strategy multilabel --folds K)."
        )
    config, manifest = copy_config(metadata, name, data_dir, name_taken)
    if strength is None:
        strength, _ = choose_strength(config.data_dir, stream=stream)
    from .networks import load_networks

    networks = load_networks(directory, metadata["keras_files"])
    pooled = pooled_folds(config.data_dir, config.folds, config.seed)
    parts, selection = fit(networks, pooled, strength)
    description = json_safe({
        "file": HOG_FILE,
        "from": metadata["name"],
        "strength": strength,
        "network_weight": WEIGHT,
        "cell": CELL,
        "bins": BINS,
        **selection.pop("parts"),
    })
    members = [HybridMember(network, part, description) for network, part in zip(networks, parts)]
    training = {**metadata["metrics"]["training"], "hog_added_to": metadata["name"]}
    return write_artefact(config, members, training, selection, manifest, config.data_dir)
