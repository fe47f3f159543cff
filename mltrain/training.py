"""Train Dispredo's MobileNet models and write them as one versioned artefact (``manage.py train``).

Two strategies:

``per-finding``  14 binary MobileNets, each trained on its finding's balanced training set
                 (``manage.py balance``: SMOTETomek on the training split only).
``multilabel``   one MobileNet with 14 sigmoid outputs, trained on the real (unbalanced)
                 training split with class-weighted binary cross-entropy and light augmentation;
                 with ``folds`` K >= 2, a cross-validated ensemble of K such networks, one per
                 patient-grouped fold of train + val (``mltrain.folds``), each stopped on the fold it
                 left out and calibrated on it (``mltrain.calibration``), thresholds from out-of-fold
                 predictions, served as their mean.

Each network is fitted by ``mltrain.fit`` (best validation mean AUROC, early stopping) and the
result is written and registered by ``mltrain.package``.
"""

import dataclasses
import sys
import time

import numpy as np

from dispredo_core.findings import FINDINGS

from . import checkpoints, dataset
from .config import TrainingError
from .fit import fit_network
from .folds import ensemble_selection, fold_masks, pooled_folds
from .members import network_members
from .package import keras_backend, write_artefact


def train(config, stdout=None, verbosity=1, name_taken=None):
    """Train per ``config`` and write the artefact; return its directory.

    ``name_taken(name)`` tells whether the run's name is used elsewhere (``mltrain.registry`` asks
    the registered model versions): such a run is refused before it starts."""
    stream = stdout or sys.stdout
    data_dir = config.data_directory()
    manifest = read_training_manifest(data_dir)
    size = int(manifest["size"])
    if config.size is None:
        config = dataclasses.replace(config, size=size)
    elif config.size != size:
        raise TrainingError(
            f"The preprocessed data in {data_dir} is {size}x{size} pixels but --size is {config.size}. "
            f"Run manage.py preprocess --size {config.size} (and balance) first, or train with --size {size}."
        )
    run = checkpoints.find(config.name) if config.resume else None
    config = dataclasses.replace(config, name=run.name if run else config.name or config.default_name())
    check_name_free(config, name_taken)
    if run:
        checkpoints.resume(run, config, data_dir, manifest)
    else:
        run = checkpoints.start(config, data_dir, manifest)

    started = time.perf_counter()
    if config.strategy == "multilabel":
        models, fits, selection = train_multilabel(config, data_dir, stream, verbosity, run)
    else:
        models, fits, selection = train_per_finding(config, data_dir, stream, verbosity, run)
    fit_seconds = sum(f["seconds"] for f in fits.values())
    images_seen = sum(f["images_seen"] for f in fits.values())
    training = {
        "seconds": round(time.perf_counter() - started, 1),
        "fit_seconds": round(fit_seconds, 1),
        "images_per_second": round(images_seen / fit_seconds, 1) if fit_seconds else None,
        "backend": keras_backend(),
        "fits": fits,
    }
    try:
        return write_artefact(config, network_members(models), training, selection, manifest, data_dir)
    finally:
        if (config.output_directory() / config.name).is_dir():  # the artefact is whole: checkpoints are done with
            run.remove()


def train_multilabel(config, data_dir, stream, verbosity, run=None):
    """One 14-output MobileNet on the real training split, or with ``config.folds`` >= 2 one per
    patient-grouped fold of train + val (a cross-validated ensemble).

    Returns ``(networks, figures, selection)``: ``selection`` is None when the validation split selects
    thresholds, else ``folds.ensemble_selection``'s out-of-fold predictions. ``run``: the
    ``checkpoints.Run`` whose members' checkpoints the fits write and resume from (None: none).
    """
    from .networks import WeightedBinaryCrossentropy, positive_weights

    train_split = dataset.load_split(data_dir, "train")
    val_split = dataset.load_split(data_dir, "val")
    if config.folds == 1:
        weights = positive_weights(train_split.labels, power=config.class_weight_power)
        network, fit = fit_network(
            config, len(FINDINGS), WeightedBinaryCrossentropy(weights.tolist()),
            train_split.pixels, train_split.labels, val_split.pixels, val_split.labels,
            FINDINGS, "multilabel", stream, verbosity, member=run and run.member(0),
        )
        fit["positive_weights"] = dict(zip(FINDINGS, map(float, weights)))
        return [network], {"multilabel": fit}, None

    pooled = pooled_folds(data_dir, config.folds, config.seed, train_split, val_split)
    pixels, labels = pooled["pixels"], pooled["labels"]
    networks, figures = [], {}
    for fold, held_out in enumerate(fold_masks(pooled)):
        weights = positive_weights(labels[~held_out], power=config.class_weight_power)
        label = f"fold {fold + 1}/{config.folds}"
        network, fit = fit_network(
            dataclasses.replace(config, seed=config.seed + fold), len(FINDINGS),
            WeightedBinaryCrossentropy(weights.tolist()),
            pixels.subset(~held_out), labels[~held_out], pixels.subset(held_out), labels[held_out],
            FINDINGS, label, stream, verbosity, member=run and run.member(fold),
        )
        fit["held_out_images"] = int(held_out.sum())
        fit["held_out_patients"] = int(len(np.unique(pooled["patients"][held_out])))
        fit["positive_weights"] = dict(zip(FINDINGS, map(float, weights)))
        networks.append(network)
        figures[f"fold {fold + 1}"] = fit
        if verbosity >= 1:
            stream.write(f"{label}: held-out mean AUROC {fit['best_val_mean_auroc']:.3f} "
                         f"(best epoch {fit['best_epoch']} of {fit['epochs_run']})\n")
    return networks, figures, ensemble_selection(networks, pooled, config.calibrate)


def train_per_finding(config, data_dir, stream, verbosity, run=None):
    """14 binary MobileNets, each on its finding's balanced set; returns ``(networks, figures, None)``."""
    import keras

    val_split = dataset.load_split(data_dir, "val")
    balanced = {}
    for finding in FINDINGS:
        try:
            balanced[finding] = dataset.load_balanced(data_dir, finding)
        except dataset.DatasetError as exc:
            raise TrainingError(str(exc)) from exc
    networks, figures = [], {}
    for index, finding in enumerate(FINDINGS):
        pixels, labels = balanced[finding]
        network, fit = fit_network(
            dataclasses.replace(config, seed=config.seed + index), 1, keras.losses.BinaryCrossentropy(),
            pixels, labels, val_split.pixels, np.asarray(val_split.labels)[:, index],
            (finding,), f"{finding} ({index + 1}/14)", stream, verbosity, member=run and run.member(index),
        )
        fit["training_positives"] = int(np.asarray(labels).sum())
        figures[finding] = fit
        networks.append(network)
    return networks, figures, None


def read_training_manifest(data_dir):
    """The manifest of the preprocessed data in ``data_dir``; a ``TrainingError`` when it is unusable."""
    try:
        return dataset.read_manifest(data_dir)
    except dataset.DatasetError as exc:
        raise TrainingError(str(exc)) from exc


def check_name_free(config, name_taken=None):
    """Raise ``TrainingError`` when ``config.name`` is taken by an artefact folder (or ``name_taken`` says so)."""
    if (config.output_directory() / config.name).exists() or (name_taken is not None and name_taken(config.name)):
        raise TrainingError(f"A model version named {config.name!r} already exists; choose another --name.")

