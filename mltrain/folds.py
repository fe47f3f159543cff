"""A cross-validated ensemble's data: patient-grouped folds of train + val pooled, and the
out-of-fold scores its members give (member k is the network that left fold k out)."""

import numpy as np

from . import calibration, dataset
from .config import TrainingError
from .rows import Rows


def patient_folds(patients, labels, source_sizes, folds, seed):
    """Fold number (0..folds-1) of each image: no patient in two folds, and each fold with about the
    same share of images from the 64 px source and of images with any finding."""
    from sklearn.model_selection import StratifiedGroupKFold

    patients = np.asarray(patients)
    if len(np.unique(patients)) < folds:
        raise TrainingError(f"{folds} folds need at least {folds} patients; the data has {len(np.unique(patients))}.")
    strata = (np.asarray(source_sizes) <= 64).astype(int) * 2 + (np.asarray(labels).sum(axis=1) > 0).astype(int)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    assignment = np.empty(len(patients), dtype=np.int64)
    for fold, (_, held_out) in enumerate(splitter.split(np.zeros(len(patients)), strata, groups=patients)):
        assignment[held_out] = fold
    return assignment


def pooled_folds(data_dir, folds, seed, train_split=None, val_split=None):
    """Train + val pooled, with each image's patient-grouped fold: what a cross-validated ensemble
    trains on. Keys: pixels (``mltrain.rows.Rows`` over the two memory maps), labels (float32),
    patients, names, sources, fold_of, folds."""
    train_split = train_split or dataset.load_split(data_dir, "train")
    val_split = val_split or dataset.load_split(data_dir, "val")
    pooled = {
        "pixels": Rows([train_split.pixels, val_split.pixels]),  # read a batch at a time, never whole
        "labels": np.concatenate([train_split.labels, val_split.labels]).astype(np.float32),
        "patients": np.concatenate([train_split.patients, val_split.patients]),
        "names": np.concatenate([train_split.names, val_split.names]),
        "sources": np.concatenate([train_split.source_sizes, val_split.source_sizes]),
    }
    pooled["fold_of"] = patient_folds(pooled["patients"], pooled["labels"], pooled["sources"], folds, seed)
    pooled["folds"] = folds
    return pooled


def fold_masks(pooled):
    """One boolean mask over ``pooled``'s images per fold."""
    return [pooled["fold_of"] == fold for fold in range(pooled["folds"])]


def check_members(members, pooled):
    """``TrainingError`` unless there is one member per fold of ``pooled``."""
    if len(members) != pooled["folds"]:
        raise TrainingError(f"An ensemble of {len(members)} members does not match {pooled['folds']} folds.")


def ensemble_selection(networks, pooled, calibrate):
    """Score each of ``pooled``'s images with the network that left its fold out, calibrate the
    networks on those scores if asked (``mltrain.calibration``; in place), and return the selection
    dict (``selection_of``)."""
    from .networks import predict

    check_members(networks, pooled)
    masks = fold_masks(pooled)
    raw = [predict([network], pooled["pixels"].subset(mask)) for network, mask in zip(networks, masks)]
    uncalibrated = out_of_fold(pooled, raw)
    probabilities, fitted = uncalibrated, None
    if calibrate:
        heads, calibrated, fitted = calibration.fit_ensemble(raw, [pooled["labels"][mask] for mask in masks])
        for network, (slopes, intercepts) in zip(networks, heads):
            calibration.calibrate_head(network, slopes, intercepts)
        probabilities = out_of_fold(pooled, calibrated)
    return selection_of(pooled, probabilities, uncalibrated, fitted)


def out_of_fold(pooled, per_fold):
    """One float32 array over ``pooled``'s images from per-fold arrays: fold k's images get ``per_fold[k]``."""
    scores = np.zeros(pooled["labels"].shape, dtype=np.float32)
    for fold, values in enumerate(per_fold):
        scores[pooled["fold_of"] == fold] = values
    return scores


def selection_of(pooled, probabilities, uncalibrated, fitted):
    """The selection that ``package.write_artefact`` takes for out-of-fold scores of ``pooled``'s
    images: ``probabilities`` (calibrated), ``uncalibrated_probabilities``, ``labels``, ``patients``,
    ``sources`` and ``calibration`` (the fitted numbers, or None)."""
    return {
        "probabilities": probabilities,
        "uncalibrated_probabilities": uncalibrated,
        "labels": pooled["labels"],
        "patients": pooled["patients"],
        "sources": pooled["sources"],
        "calibration": fitted,
    }
