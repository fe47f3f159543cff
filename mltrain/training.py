"""Train Dispredo's MobileNet models and write them as one versioned artefact (``manage.py train``).

Two strategies:

``per-finding``  14 binary MobileNets, each trained on its finding's balanced training set
                 (``manage.py balance``: SMOTETomek on the training split only).
``multilabel``   one MobileNet with 14 sigmoid outputs, trained on the real (unbalanced)
                 training split with class-weighted binary cross-entropy and light augmentation;
                 with ``folds`` K >= 2, a cross-validated ensemble of K such networks, one per
                 patient-grouped fold of train + val, each stopped on the fold it left out and
                 Platt-scaled on it (``calibration``), thresholds from out-of-fold predictions,
                 served as their mean.

Both select the epoch with the best validation mean AUROC (real validation images of patients
never trained on), stop early when it stops improving, keep those weights and export the ONNX
serving graph. Scores of patients the model did not train on (out of fold, or the validation
split's) go into the artefact with the reliability and operating thresholds they give, and an input
guard is fitted on the training images (``mltrain.holdout``).
The artefact (see ``diagnosis.artefact``) is written to a temporary directory, renamed when
complete and then registered as a ``ModelVersion``.
"""

import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.utils import timezone

from diagnosis.artefact import write_metadata
from diagnosis.findings import FINDINGS

from . import calibration, dataset
from .holdout import artefact_extras, training_images
from .metrics import binary_report, json_safe, mean_auroc, per_finding_auroc

STRATEGIES = ("multilabel", "per-finding")
MIN_SIZE = 32  # MobileNet's smallest input
ALPHAS = (0.25, 0.5, 0.75, 1.0)  # keras.applications.MobileNet width multipliers
PATIENTS_FILE = "patients.json"
MONITOR = "val_mean_auroc"
NORMALISATIONS = ("fixed", "image")  # see networks.build_model



@dataclass(frozen=True)
class TrainConfig:
    strategy: str = "multilabel"
    size: int | None = None  # input size; None: the preprocessed data's size (they must match)
    alpha: float = 0.25  # MobileNet width multiplier
    epochs: int = 60  # upper bound; early stopping on validation mean AUROC ends most runs sooner
    patience: int = 12  # epochs without a better validation mean AUROC before stopping
    min_epochs: int = 0  # early stopping neither stops nor keeps weights within the first min_epochs epochs
    batch_size: int = 32
    learning_rate: float = 1e-3
    lr_patience: int = 0  # halve the learning rate after this many epochs without improvement (0: never)
    dropout: float = 0.3
    weight_decay: float = 1e-4  # L2 on the head
    ema: float = 0.0  # momentum of an exponential moving average of the weights, which is scored and kept (0: off)
    normalise: str = "fixed"  # pixels to MobileNet's range: "fixed" (0..255 -> -1..1) or "image" (per-image mean and spread)
    augment: bool = True  # small shifts, rotations, zoom
    degrade: float = 0.5  # share of training images blurred at random, against the source-sharpness shortcut
    degrade_min_scale: float = 0.35  # the strongest blur: downscale to this fraction of the size
    class_weight_power: float = 0.5  # multilabel: positive weight (negatives/positives) ** power
    auxiliary: float = 0.0  # multilabel: weight of the loss on each image's age, sex and view (0: off)
    mixup: float = 0.0  # mixup's Beta concentration (0: off); each image mixed with another of its batch
    seed: int = 0
    folds: int = 1  # 1: fit on train, select on val; K >= 2: K patient-grouped folds of train + val, one member each
    repeats: int = 1  # folds >= 2: members per fold, each from its own seed (folds x repeats networks in all)
    calibrate: bool = True  # folds >= 2: put the members on one calibrated scale (mltrain.calibration)
    data_dir: str | None = None  # preprocessed data; default DISPREDO_MLTRAIN_DIR/preprocessed
    output_dir: str | None = None  # where artefacts go; default DISPREDO_MODEL_DIR
    name: str | None = None  # artefact and ModelVersion name; default from strategy, size, alpha, time
    activate: bool = False

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}.")
        if self.size is not None and (not isinstance(self.size, int) or self.size < MIN_SIZE):
            raise ValueError(f"size must be an integer of at least {MIN_SIZE}, not {self.size!r}.")
        if self.alpha not in ALPHAS:
            raise ValueError(f"alpha must be one of {', '.join(map(str, ALPHAS))}, not {self.alpha!r}.")
        if not isinstance(self.lr_patience, int) or self.lr_patience < 0:
            raise ValueError(f"lr_patience must be a non-negative integer, not {self.lr_patience!r}.")
        for field in ("epochs", "patience", "batch_size"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{field} must be a positive integer, not {value!r}.")
        if not isinstance(self.min_epochs, int) or not 0 <= self.min_epochs < self.epochs:
            raise ValueError(f"min_epochs must be an integer from 0 to epochs - 1 ({self.epochs - 1}), not {self.min_epochs!r}.")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be in [0, 1), not {self.ema!r}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, not {self.learning_rate!r}.")
        for field in ("dropout", "degrade"):
            value = getattr(self, field)
            if not 0 <= value < 1:
                raise ValueError(f"{field} must be in [0, 1), not {value!r}.")
        if not 0 < self.degrade_min_scale <= 1:
            raise ValueError(f"degrade_min_scale must be in (0, 1], not {self.degrade_min_scale!r}.")
        if self.normalise not in NORMALISATIONS:
            raise ValueError(f"normalise must be one of {', '.join(NORMALISATIONS)}, not {self.normalise!r}.")
        for field in ("weight_decay", "class_weight_power", "auxiliary", "mixup"):
            if getattr(self, field) < 0:
                raise ValueError(f"{field} must not be negative, not {getattr(self, field)!r}.")
        if self.auxiliary and self.strategy != "multilabel":
            raise ValueError("auxiliary (predicting age, sex and view as well) applies to the multilabel strategy only.")
        if not isinstance(self.folds, int) or self.folds < 1:
            raise ValueError(f"folds must be a positive integer, not {self.folds!r}.")
        if self.folds > 1 and self.strategy != "multilabel":
            raise ValueError("folds (a cross-validated ensemble) applies to the multilabel strategy only.")
        if not isinstance(self.repeats, int) or self.repeats < 1:
            raise ValueError(f"repeats must be a positive integer, not {self.repeats!r}.")
        if self.repeats > 1 and self.folds < 2:
            raise ValueError("repeats (several members per fold) needs folds of 2 or more.")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, not {self.seed!r}.")
        if self.name is not None and (not self.name or "/" in self.name or self.name.startswith(".")):
            raise ValueError(f"name must be a plain directory name, not {self.name!r}.")

    def data_directory(self):
        return Path(self.data_dir) if self.data_dir else dataset.default_directory()

    def output_directory(self):
        return Path(self.output_dir) if self.output_dir else Path(settings.DISPREDO_MODEL_DIR)

    def default_name(self):
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        folds = f"-cv{self.folds}" if self.folds > 1 else ""
        folds += f"x{self.repeats}" if self.repeats > 1 else ""
        return f"{self.strategy}-{self.size}px-a{self.alpha}{folds}-s{self.seed}-{stamp}"


class TrainingError(Exception):
    """Training cannot start or finish (missing data, wrong size, name taken...)."""


# --- data -----------------------------------------------------------------------------------


def _seed_everything(seed):
    import keras

    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def batches(pixels, labels, batch_size, seed, auxiliary=None, mixup=0.0):
    """A ``keras.utils.PyDataset`` of shuffled float32 batches ([B, S, S, 1], [B, K]) read from
    ``pixels`` (uint8 [N, S, S], memory-mapped or not) and ``labels``, reshuffled each epoch.
    With ``auxiliary`` ([N, A] targets) the batch's targets are ``([B, K], [B, A])``.

    Every batch has ``batch_size`` images (the remainder of an epoch's shuffle is left for the next
    ones), so compiling backends (JAX/XLA) build one training step, not one per remainder.
    With ``mixup`` > 0 each image and its targets are mixed with another image of the batch, with a
    weight drawn from Beta(mixup, mixup) and folded to at least 0.5 so the first image dominates.
    Augmentation is not done here but by the training model's own layers, on whichever backend runs.
    """
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(len(pixels))

        def __len__(self):
            return max(1, len(pixels) // batch_size)

        def __getitem__(self, index):
            chosen = np.sort(self.order[index * batch_size : (index + 1) * batch_size])  # sorted: memmap locality
            x = np.asarray(pixels[chosen], dtype=np.float32)[..., None]
            y = [np.asarray(labels[chosen], dtype=np.float32).reshape(len(chosen), -1)]
            if auxiliary is not None:
                y.append(np.asarray(auxiliary[chosen], dtype=np.float32))
            if mixup:
                weight = self.rng.beta(mixup, mixup, size=len(chosen)).astype(np.float32)
                weight = np.maximum(weight, 1 - weight)
                partner = self.rng.permutation(len(chosen))
                x, y = _mix(x, weight, partner), [_mix(target, weight, partner) for target in y]
            return x, (y[0] if len(y) == 1 else tuple(y))

        def on_epoch_end(self):
            self.order = self.rng.permutation(len(pixels))

    return Batches()


def _mix(array, weight, partner):
    """``weight * array + (1 - weight) * array[partner]``, ``weight`` [B] broadcast over the rest."""
    weight = weight.reshape(-1, *[1] * (array.ndim - 1))
    return weight * array + (1 - weight) * array[partner]


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


# --- callbacks ------------------------------------------------------------------------------


def _callbacks_module():
    import keras

    class ValidationAUROC(keras.callbacks.Callback):
        """Adds ``val_mean_auroc`` (mean AUROC of the real validation split) to each epoch's logs.

        For a finding whose validation split has one class only, AUROC is undefined and the
        negated validation cross-entropy is logged instead, so early stopping still works.
        """

        def __init__(self, network, pixels, labels, findings):
            super().__init__()
            self.network = network  # the serving network inside the training model
            self.pixels = np.asarray(pixels)
            self.labels = np.asarray(labels).reshape(len(pixels), -1)
            self.findings = findings
            self.history = []

        def on_epoch_end(self, epoch, logs=None):
            probabilities = predict([self.network], self.pixels)
            aurocs = per_finding_auroc(self.labels, probabilities, self.findings)
            value = mean_auroc(aurocs)
            if math.isnan(value):
                p = np.clip(probabilities, 1e-7, 1 - 1e-7)
                value = -float(np.mean(-(self.labels * np.log(p) + (1 - self.labels) * np.log(1 - p))))
            self.history.append(value)
            if logs is not None:
                logs[MONITOR] = value

    class EpochProgress(keras.callbacks.Callback):
        """A tqdm progress bar per epoch, written to ``stream`` (the command's stdout)."""

        def __init__(self, stream, label, epochs, steps):
            super().__init__()
            self.stream, self.label, self.epochs, self.steps = stream, label, epochs, steps
            self.bar = None

        def on_epoch_begin(self, epoch, logs=None):
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.steps,
                desc=f"{self.label} epoch {epoch + 1}/{self.epochs}",
                unit="batch",
                file=self.stream,
                leave=True,
                dynamic_ncols=False,
                ncols=100,
                mininterval=1.0,
            )

        def on_train_batch_end(self, batch, logs=None):
            self.bar.update(1)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            self.bar.set_postfix(loss=f"{logs.get('loss', float('nan')):.4f}", val_auroc=f"{logs.get(MONITOR, float('nan')):.4f}")
            self.bar.close()

    class WeightAverage(keras.callbacks.Callback):
        """Keeps an exponential moving average of ``network``'s weights (batch-norm statistics too)
        and swaps it in at each epoch's end, so the callbacks after this one score and keep the
        average; the raw weights go back before the next epoch, so training itself is unchanged."""

        def __init__(self, network, momentum):
            super().__init__()
            self.network, self.momentum = network, momentum
            self.average = self.raw = None

        def on_train_begin(self, logs=None):
            self.average = [np.array(w, dtype=np.float64) for w in self.network.get_weights()]

        def on_train_batch_end(self, batch, logs=None):
            for average, weight in zip(self.average, self.network.get_weights()):
                average *= self.momentum
                average += (1.0 - self.momentum) * weight

        def on_epoch_end(self, epoch, logs=None):
            self.raw = self.network.get_weights()
            self.network.set_weights([w.astype(np.float32) for w in self.average])

        def on_epoch_begin(self, epoch, logs=None):
            if self.raw is not None:
                self.network.set_weights(self.raw)

    return ValidationAUROC, EpochProgress, WeightAverage


# --- training -------------------------------------------------------------------------------


def _fit(config, outputs, loss, train_pixels, train_labels, val_pixels, val_labels, findings, label, stream, verbosity,
         auxiliary=None):
    """Build and fit one network with early stopping on validation mean AUROC; return ``(network, figures)``.

    ``network`` (the serving network, without the augmentation layers) holds the best epoch's weights.
    ``auxiliary``: the training images' attribute targets, used when ``config.auxiliary`` > 0.
    """
    import keras

    from .networks import AuxiliaryLoss, build_model, build_training_model

    _seed_everything(config.seed)
    network = build_model(config, outputs=outputs)
    model = build_training_model(network, config)
    if config.auxiliary:
        if auxiliary is None:
            raise TrainingError("auxiliary training needs each training image's attributes.")
        loss, loss_weights = [loss, AuxiliaryLoss()], [1.0, config.auxiliary]
    else:
        auxiliary, loss_weights = None, None
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss, loss_weights=loss_weights)
    data = batches(train_pixels, train_labels, config.batch_size, config.seed, auxiliary=auxiliary, mixup=config.mixup)
    ValidationAUROC, EpochProgress, WeightAverage = _callbacks_module()
    validation = ValidationAUROC(network, val_pixels, val_labels, findings)
    # The average must be swapped in before validation scores it and early stopping keeps it.
    callbacks = [WeightAverage(network, config.ema)] if config.ema else []
    callbacks.append(validation)
    if verbosity >= 1:
        callbacks.append(EpochProgress(stream, label, config.epochs, len(data)))
    if config.lr_patience:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=MONITOR, mode="max", factor=0.5, patience=config.lr_patience, min_lr=1e-5, verbose=0
            )
        )
    # min_epochs: a weight average that still lags its start must not end the run, nor be kept.
    callbacks.append(
        keras.callbacks.EarlyStopping(
            monitor=MONITOR, mode="max", patience=config.patience, restore_best_weights=True, verbose=0,
            start_from_epoch=config.min_epochs,
        )
    )
    started = time.perf_counter()
    history = model.fit(data, epochs=config.epochs, callbacks=callbacks, verbose=0)
    seconds = time.perf_counter() - started
    scores = validation.history
    best = config.min_epochs + int(np.argmax(scores[config.min_epochs :]))
    epochs_run = len(history.epoch)
    return network, {
        "epochs_run": epochs_run,
        "best_epoch": best + 1,
        "best_val_mean_auroc": float(scores[best]),
        "seconds": seconds,
        "training_images": int(len(train_pixels)),
        "images_seen": int(len(train_pixels)) * epochs_run,
    }


def predict(networks, pixels, batch_size=128):
    """Mean sigmoid outputs of ``networks`` (Keras, inference mode) for uint8 ``pixels`` [N, S, S].

    The images are padded to whole batches so a compiling backend builds one program per batch size.
    """
    count = len(pixels)
    padded = np.zeros((math.ceil(count / batch_size) * batch_size, *np.shape(pixels)[1:], 1), dtype=np.float32)
    padded[:count, ..., 0] = pixels
    return np.mean([network.predict(padded, batch_size=batch_size, verbose=0)[:count] for network in networks], axis=0)


def image_attributes(data_dir, names, needed_by="--auxiliary"):
    """Auxiliary training targets (``networks.auxiliary_targets``) of the images ``names``, read from
    the label file of the NIH folder the preprocessed data in ``data_dir`` came from; the error without
    one names the option ``needed_by``."""
    from . import nih
    from .networks import auxiliary_targets

    source = dataset.read_manifest(data_dir).get("source")
    try:
        return auxiliary_targets(nih.read_image_attributes(nih.find_label_file(source), [str(n) for n in names]))
    except (nih.NihDataError, TypeError) as exc:
        raise TrainingError(
            f"{needed_by} needs the NIH label file the data came from ({source}): {exc}"
        ) from exc


def train_multilabel(config, data_dir, stream, verbosity):
    """One 14-output MobileNet on the real training split, or with ``config.folds`` >= 2 one per
    patient-grouped fold of train + val (a cross-validated ensemble).

    Returns ``(networks, figures, selection)``: ``selection`` is None when the validation split selects
    thresholds, else ``{"probabilities", "labels", "patients"}`` of the out-of-fold predictions.
    """
    from .networks import WeightedBinaryCrossentropy, positive_weights

    train_split = dataset.load_split(data_dir, "train")
    val_split = dataset.load_split(data_dir, "val")
    if config.folds == 1:
        weights = positive_weights(train_split.labels, power=config.class_weight_power)
        network, fit = _fit(
            config, len(FINDINGS), WeightedBinaryCrossentropy(weights.tolist()),
            train_split.pixels, train_split.labels, val_split.pixels, val_split.labels,
            FINDINGS, "multilabel", stream, verbosity,
            auxiliary=image_attributes(data_dir, train_split.names) if config.auxiliary else None,
        )
        fit["positive_weights"] = dict(zip(FINDINGS, map(float, weights)))
        return [network], {"multilabel": fit}, None

    pooled = pooled_folds(data_dir, config.folds, config.seed, train_split, val_split)
    pixels, labels, fold_of = pooled["pixels"], pooled["labels"], pooled["fold_of"]
    attributes = image_attributes(data_dir, pooled["names"]) if config.auxiliary else None
    networks, figures = [], {}
    for index in range(config.folds * config.repeats):
        fold, repeat = member_fold(index, config.folds), index // config.folds
        fitting, held_out = fold_of != fold, fold_of == fold
        weights = positive_weights(labels[fitting], power=config.class_weight_power)
        # Repeat 0 keeps the seeds of a run without repeats, so its members are that run's networks.
        member = dataclasses.replace(config, seed=config.seed + index)
        repeat_key = f" repeat {repeat + 1}" if config.repeats > 1 else ""
        key = f"fold {fold + 1}{repeat_key}"
        label = f"fold {fold + 1}/{config.folds}{repeat_key}" + (f"/{config.repeats}" if repeat_key else "")
        network, fit = _fit(
            member, len(FINDINGS), WeightedBinaryCrossentropy(weights.tolist()),
            pixels[fitting], labels[fitting], pixels[held_out], labels[held_out],
            FINDINGS, label, stream, verbosity,
            auxiliary=None if attributes is None else attributes[fitting],
        )
        fit["held_out_images"] = int(held_out.sum())
        fit["held_out_patients"] = int(len(np.unique(pooled["patients"][held_out])))
        fit["positive_weights"] = dict(zip(FINDINGS, map(float, weights)))
        networks.append(network)
        figures[key] = fit
        if verbosity >= 1:
            stream.write(f"{label}: held-out mean AUROC {fit['best_val_mean_auroc']:.3f} "
                         f"(best epoch {fit['best_epoch']} of {fit['epochs_run']})\n")
    return networks, figures, ensemble_selection(networks, pooled, config.calibrate)


def pooled_folds(data_dir, folds, seed, train_split=None, val_split=None):
    """Train + val pooled, with each image's patient-grouped fold: what a cross-validated ensemble
    trains on. Keys: pixels, labels (float32), patients, names, sources, fold_of."""
    train_split = train_split or dataset.load_split(data_dir, "train")
    val_split = val_split or dataset.load_split(data_dir, "val")
    # In memory: train + val of the sample, or of the full dataset at 64 px, is a few hundred MB.
    pooled = {
        "pixels": np.concatenate([train_split.pixels, val_split.pixels]),
        "labels": np.concatenate([train_split.labels, val_split.labels]).astype(np.float32),
        "patients": np.concatenate([train_split.patients, val_split.patients]),
        "names": np.concatenate([train_split.names, val_split.names]),
        "sources": np.concatenate([train_split.source_sizes, val_split.source_sizes]),
    }
    pooled["fold_of"] = patient_folds(pooled["patients"], pooled["labels"], pooled["sources"], folds, seed)
    pooled["folds"] = folds
    return pooled


def member_fold(index, folds):
    """The fold that an ensemble's member ``index`` left out: members run repeat by repeat, each
    repeat one member per fold in fold order."""
    return index % folds


def ensemble_selection(networks, pooled, calibrate):
    """Score each of ``pooled``'s images with the members that left its fold out, calibrate the members
    on those scores if asked (``mltrain.calibration``; in place), and return the selection dict:
    out-of-fold ``probabilities`` (calibrated), ``uncalibrated_probabilities``, ``labels``,
    ``patients``, ``sources`` and ``calibration`` (the fitted numbers, or None)."""
    labels, fold_of, folds = pooled["labels"], pooled["fold_of"], pooled["folds"]
    if len(networks) % folds:
        raise TrainingError(f"An ensemble of {len(networks)} networks does not cover {folds} folds evenly.")
    masks = [fold_of == fold for fold in range(folds)]
    member_folds = [member_fold(index, folds) for index in range(len(networks))]
    raw = [predict([network], pooled["pixels"][masks[fold]]) for network, fold in zip(networks, member_folds)]
    uncalibrated = out_of_fold(pooled, fold_means(raw, member_folds, folds))
    probabilities, fitted = uncalibrated, None
    if calibrate:
        heads, calibrated, fitted = calibration.fit_ensemble(raw, [labels[mask] for mask in masks], member_folds)
        for network, (slopes, intercepts) in zip(networks, heads):
            calibration.calibrate_head(network, slopes, intercepts)
        probabilities = out_of_fold(pooled, calibrated)
    return selection_of(pooled, probabilities, uncalibrated, fitted)


def fold_means(member_scores, member_folds, folds):
    """Per fold, the mean of its members' scores on it, as the served graph averages its members."""
    return [
        np.mean([scores for scores, f in zip(member_scores, member_folds) if f == fold], axis=0) for fold in range(folds)
    ]


def out_of_fold(pooled, per_fold):
    """One float32 array over ``pooled``'s images from per-fold arrays: fold k's images get ``per_fold[k]``."""
    scores = np.zeros(pooled["labels"].shape, dtype=np.float32)
    for fold, values in enumerate(per_fold):
        scores[pooled["fold_of"] == fold] = values
    return scores


def selection_of(pooled, probabilities, uncalibrated, fitted):
    """The selection dict ``write_artefact`` takes for out-of-fold scores of ``pooled``'s images."""
    return {
        "probabilities": probabilities,
        "uncalibrated_probabilities": uncalibrated,
        "labels": pooled["labels"],
        "patients": pooled["patients"],
        "sources": pooled["sources"],
        "calibration": fitted,
    }


def train_per_finding(config, data_dir, stream, verbosity):
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
        network, fit = _fit(
            dataclasses.replace(config, seed=config.seed + index), 1, keras.losses.BinaryCrossentropy(),
            pixels, labels, val_split.pixels, np.asarray(val_split.labels)[:, index],
            (finding,), f"{finding} ({index + 1}/14)", stream, verbosity,
        )
        fit["training_positives"] = int(np.asarray(labels).sum())
        figures[finding] = fit
        networks.append(network)
    return networks, figures, None


def keras_files(config):
    """The ``.keras`` file names of an artefact: per-finding in FINDINGS order, one per fold of an ensemble."""
    if config.strategy == "per-finding":
        return [f"{finding}.keras" for finding in FINDINGS]
    if config.folds > 1 and config.repeats > 1:
        return [
            f"fold-{member_fold(index, config.folds) + 1}-repeat-{index // config.folds + 1}.keras"
            for index in range(config.folds * config.repeats)
        ]
    if config.folds > 1:
        return [f"fold-{fold + 1}.keras" for fold in range(config.folds)]
    return ["model.keras"]


def load_keras_models(directory, metadata):
    """The Keras networks of the artefact at ``directory`` (with ``metadata``), in serving order."""
    import keras

    from . import networks  # noqa: F401  (registers the custom loss for deserialisation)

    return [keras.models.load_model(Path(directory) / name, compile=False) for name in metadata["keras_files"]]


def _validation_metrics(probabilities, labels, thresholds):
    aurocs = per_finding_auroc(labels, probabilities)
    return {
        "mean_auroc": mean_auroc(aurocs),
        "findings": {
            name: binary_report(labels[:, i], probabilities[:, i], thresholds[name]) for i, name in enumerate(FINDINGS)
        },
    }


def train(config, stdout=None, verbosity=1, force=False):
    """Train per ``config``, write the artefact, register it (and activate it if asked, through the
    activation gate; ``force`` overrides a refusal); return the ModelVersion."""
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
    config = dataclasses.replace(config, name=config.name or config.default_name())
    check_name_free(config)

    started = time.perf_counter()
    if config.strategy == "multilabel":
        models, fits, selection = train_multilabel(config, data_dir, stream, verbosity)
    else:
        models, fits, selection = train_per_finding(config, data_dir, stream, verbosity)
    fit_seconds = sum(f["seconds"] for f in fits.values())
    images_seen = sum(f["images_seen"] for f in fits.values())
    training = {
        "seconds": round(time.perf_counter() - started, 1),
        "fit_seconds": round(fit_seconds, 1),
        "images_per_second": round(images_seen / fit_seconds, 1) if fit_seconds else None,
        "backend": _backend(),
        "fits": fits,
    }
    return write_artefact(config, models, training, selection, manifest, data_dir, force=force)


def read_training_manifest(data_dir):
    """The manifest of the preprocessed data in ``data_dir``; a ``TrainingError`` when it is unusable."""
    try:
        return dataset.read_manifest(data_dir)
    except dataset.DatasetError as exc:
        raise TrainingError(str(exc)) from exc


def check_name_free(config):
    """Raise ``TrainingError`` when ``config.name`` is taken by an artefact folder or a model version."""
    from diagnosis.models import ModelVersion

    if (config.output_directory() / config.name).exists() or ModelVersion.objects.filter(name=config.name).exists():
        raise TrainingError(f"A model version named {config.name!r} already exists; choose another --name.")


def write_artefact(config, models, training, selection, manifest, data_dir, hybrid=None, force=False):
    """Save ``models``, export and check the ONNX graph, choose thresholds, write the artefact
    atomically and register it (activated if ``config.activate`` and the activation gate allows it,
    or ``force``); return the ModelVersion.

    ``selection``: None to choose thresholds on the validation split with the served graph, or
    ``ensemble_selection``'s out-of-fold predictions. ``training``: the figures of the training run.
    ``hybrid``: None, or the HOG members joined to an ensemble (``mltrain.hybrid.add_hog``).
    """
    from . import registry
    from .export import ONNX_FILE, INPUT_NAME, OUTPUT_NAMES, check_agreement, export_onnx, onnx_session, run_onnx

    name = config.name
    output_dir = config.output_directory()
    output_dir.mkdir(parents=True, exist_ok=True)
    final = output_dir / name

    partial = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=output_dir))
    try:
        files = keras_files(config)
        for model, filename in zip(models, files):
            model.save(partial / filename)  # the serving network alone: no optimizer, no augmentation layers
        hog_members = None
        if hybrid:
            from .hybrid import save_members

            hog_members = hybrid["members"]
            save_members(partial / hybrid["description"]["file"], hog_members)
        export_onnx(models, config.size, partial / ONNX_FILE, hog_members=hog_members)

        val = dataset.load_split(data_dir, "val")
        val_pixels = np.asarray(val.pixels)
        agreement = check_agreement(models, partial / ONNX_FILE, val_pixels[:64], hog_members=hog_members)
        if selection is None:
            # Thresholds and reported validation figures from the served graph on the validation split.
            probabilities, _ = run_onnx(onnx_session(partial / ONNX_FILE), val_pixels)
            selection_labels = np.asarray(val.labels)
            selection_method = "the validation split"
            fitted = {"train": np.unique(dataset.load_split(data_dir, "train").patients), "val": np.unique(val.patients)}
        else:
            # Each image scored by the members that never saw its patient.
            probabilities, selection_labels = selection["probabilities"], selection["labels"]
            members = f" ({config.repeats} networks per fold)" if config.repeats > 1 else ""
            members += " joined with HOG + logistic regression" if hybrid else ""
            selection_method = (
                f"{'calibrated ' if config.calibrate else ''}out-of-fold predictions of {config.folds} "
                f"patient-grouped folds of train + val{members}"
            )
            fitted = {"train": np.unique(selection["patients"]), "val": np.array([], dtype=np.int64)}
        if selection is None:
            holdout_patients, description = val.patients, "the validation split, scored by the served graph"
        else:
            holdout_patients, description = selection["patients"], f"{selection_method}, each image scored by the members that never saw its patient"
        extras = artefact_extras(
            partial, probabilities, selection_labels, holdout_patients, description,
            *training_images(data_dir, pooled=selection is not None),
        )
        thresholds = extras["thresholds"]
        metrics = json_safe(
            {
                "val": _validation_metrics(probabilities, selection_labels, thresholds),
                "selection": selection_method,
                "uncalibrated_out_of_fold_mean_auroc": (
                    None if selection is None
                    else mean_auroc(per_finding_auroc(selection_labels, selection["uncalibrated_probabilities"]))
                ),
                "training": training,
                "calibration": None if selection is None else selection.get("calibration"),
                "export": agreement,
            }
        )
        (partial / PATIENTS_FILE).write_text(
            json.dumps({split: sorted(map(int, ids)) for split, ids in fitted.items()})
        )
        write_metadata(
            partial,
            {
                "name": name,
                "strategy": config.strategy,
                "findings": list(FINDINGS),
                **extras,
                "input_size": config.size,
                "serving": {
                    "file": ONNX_FILE,
                    "input": INPUT_NAME,
                    "outputs": list(OUTPUT_NAMES),
                    "pixel_range": [0, 255],
                    "cam_shape": list(agreement["cam_shape"][:2]),
                },
                "keras_files": files,
                "hog": json_safe(hybrid["description"]) if hybrid else None,
                "metrics": metrics,
                "config": dataclasses.asdict(config),
                "data_manifest": manifest,
                "data_directory": str(data_dir),
                "patients_file": PATIENTS_FILE,
                "created_at": timezone.now().isoformat(),
                "versions": _library_versions(),
            },
        )
        os.replace(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return registry.register(final, activate=config.activate, force=force)


def _backend():
    import keras

    return keras.backend.backend()


def _library_versions():
    import importlib.metadata

    import keras

    versions = {"keras": keras.__version__, "keras_backend": _backend(), "numpy": np.__version__}
    for package in ("tensorflow-cpu", "tensorflow", "jax", "torch"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def summary_table(metadata):
    """Lines of a per-finding table of validation figures from an artefact's ``metadata``."""
    val = metadata["metrics"]["val"]
    lines = [
        f"{'finding':<20} {'val AUROC':>9} {'threshold':>9} {'recall':>7} {'precision':>9} {'pos':>4}",
        "-" * 63,
    ]
    for name in FINDINGS:
        row = val["findings"][name]
        auc = "n/a" if row["auroc"] is None else f"{row['auroc']:.3f}"
        lines.append(
            f"{name:<20} {auc:>9} {row['threshold']:>9.3f} {row['recall']:>7.2f} {row['precision']:>9.2f} {row['positives']:>4}"
        )
    lines.append("-" * 63)
    mean = val["mean_auroc"]
    lines.append(f"{'mean AUROC':<20} {'n/a' if mean is None else f'{mean:.3f}':>9}")
    return lines
