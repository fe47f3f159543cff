"""Train Dispredo's MobileNet models and write them as one versioned artefact (``manage.py train``).

Two strategies:

``per-finding``  14 binary MobileNets, each trained on its finding's balanced training set
                 (``manage.py balance``: SMOTETomek on the training split only).
``multilabel``   one MobileNet with 14 sigmoid outputs, trained on the real (unbalanced)
                 training split with class-weighted binary cross-entropy and light augmentation.

Both select the epoch with the best validation mean AUROC (real validation images of patients
never trained on), stop early when it stops improving, keep those weights, choose each finding's
operating threshold on the validation split (Youden's J) and export the ONNX serving graph.
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

from . import dataset
from .metrics import binary_report, json_safe, mean_auroc, per_finding_auroc, youden_threshold

STRATEGIES = ("multilabel", "per-finding")
MIN_SIZE = 32  # MobileNet's smallest input
ALPHAS = (0.25, 0.5, 0.75, 1.0)  # keras.applications.MobileNet width multipliers
PATIENTS_FILE = "patients.json"
MONITOR = "val_mean_auroc"



@dataclass(frozen=True)
class TrainConfig:
    strategy: str = "multilabel"
    size: int | None = None  # input size; None: the preprocessed data's size (they must match)
    alpha: float = 0.25  # MobileNet width multiplier
    epochs: int = 60  # upper bound; early stopping on validation mean AUROC ends most runs sooner
    patience: int = 12  # epochs without a better validation mean AUROC before stopping
    batch_size: int = 32
    learning_rate: float = 1e-3
    lr_patience: int = 0  # halve the learning rate after this many epochs without improvement (0: never)
    dropout: float = 0.3
    weight_decay: float = 1e-4  # L2 on the head
    augment: bool = True  # small shifts, rotations, zoom
    degrade: float = 0.5  # share of training images blurred at random, against the source-sharpness shortcut
    degrade_min_scale: float = 0.35  # the strongest blur: downscale to this fraction of the size
    class_weight_power: float = 0.5  # multilabel: positive weight (negatives/positives) ** power
    seed: int = 0
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
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, not {self.learning_rate!r}.")
        for field in ("dropout", "degrade"):
            value = getattr(self, field)
            if not 0 <= value < 1:
                raise ValueError(f"{field} must be in [0, 1), not {value!r}.")
        if not 0 < self.degrade_min_scale <= 1:
            raise ValueError(f"degrade_min_scale must be in (0, 1], not {self.degrade_min_scale!r}.")
        if self.weight_decay < 0 or self.class_weight_power < 0:
            raise ValueError("weight_decay and class_weight_power must not be negative.")
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
        return f"{self.strategy}-{self.size}px-a{self.alpha}-s{self.seed}-{stamp}"


class TrainingError(Exception):
    """Training cannot start or finish (missing data, wrong size, name taken...)."""


# --- data -----------------------------------------------------------------------------------


def _seed_everything(seed):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def make_dataset(pixels, labels, config, training, sharp=None):
    """tf.data pipeline: map (to float [S, S, 1]) -> cache -> shuffle -> batch -> augment -> prefetch.

    ``sharp`` (bool [N]) marks images that may be blurred at random (``config.degrade``);
    None means all of them.
    """
    import tensorflow as tf

    from .networks import build_augmenter, degrade_resolution

    pixels = np.asarray(pixels)
    labels = np.asarray(labels, dtype=np.float32)
    if labels.ndim == 1:
        labels = labels[:, None]
    sharp = np.ones(len(pixels), dtype=bool) if sharp is None else np.asarray(sharp, dtype=bool)
    data = tf.data.Dataset.from_tensor_slices((pixels, labels, sharp))
    data = data.map(lambda x, y, s: (tf.cast(x, tf.float32)[..., None], y, s), num_parallel_calls=tf.data.AUTOTUNE)
    data = data.cache()
    if training:
        data = data.shuffle(len(pixels), seed=config.seed, reshuffle_each_iteration=True)
    data = data.batch(config.batch_size)
    if training and (config.augment or config.degrade):
        augmenter = build_augmenter(config) if config.augment else None
        seeds = tf.data.Dataset.random(seed=config.seed, rerandomize_each_iteration=True).batch(2)

        def augment(batch, seed):
            (x, y, s) = batch
            if config.degrade:
                blurred = degrade_resolution(x, config.degrade, config.degrade_min_scale, seed)
                x = tf.where(s[:, None, None, None], blurred, x)
            if augmenter is not None:
                x = augmenter(x, training=True)
            return x, y, s

        data = tf.data.Dataset.zip((data, seeds)).map(augment)
    data = data.map(lambda x, y, s: (x, y))
    return data.prefetch(tf.data.AUTOTUNE)


# --- callbacks ------------------------------------------------------------------------------


def _callbacks_module():
    import keras

    class ValidationAUROC(keras.callbacks.Callback):
        """Adds ``val_mean_auroc`` (mean AUROC of the real validation split) to each epoch's logs.

        For a finding whose validation split has one class only, AUROC is undefined and the
        negated validation cross-entropy is logged instead, so early stopping still works.
        """

        def __init__(self, pixels, labels, findings, batch_size=128):
            super().__init__()
            self.images = np.asarray(pixels, dtype=np.float32)[..., None]
            self.labels = np.asarray(labels).reshape(len(pixels), -1)
            self.findings = findings
            self.batch_size = batch_size
            self.history = []

        def on_epoch_end(self, epoch, logs=None):
            probabilities = self.model.predict(self.images, batch_size=self.batch_size, verbose=0)
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

    return ValidationAUROC, EpochProgress


# --- training -------------------------------------------------------------------------------


def _fit(model, train_data, steps, val_pixels, val_labels, findings, config, label, stream, verbosity):
    """Fit ``model`` with early stopping on validation mean AUROC; return the fit's figures."""
    import keras

    ValidationAUROC, EpochProgress = _callbacks_module()
    validation = ValidationAUROC(val_pixels, val_labels, findings)
    callbacks = [validation]
    if verbosity >= 1:
        callbacks.append(EpochProgress(stream, label, config.epochs, steps))
    if config.lr_patience:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=MONITOR, mode="max", factor=0.5, patience=config.lr_patience, min_lr=1e-5, verbose=0
            )
        )
    callbacks.append(
        keras.callbacks.EarlyStopping(
            monitor=MONITOR, mode="max", patience=config.patience, restore_best_weights=True, verbose=0
        )
    )
    started = time.perf_counter()
    history = model.fit(train_data, epochs=config.epochs, callbacks=callbacks, verbose=0)
    seconds = time.perf_counter() - started
    scores = validation.history
    best = int(np.argmax(scores))
    return {
        "epochs_run": len(history.epoch),
        "best_epoch": best + 1,
        "best_val_mean_auroc": float(scores[best]),
        "seconds": seconds,
    }


def _compile(model, config, loss):
    import keras

    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss)


def train_multilabel(config, data_dir, stream, verbosity):
    """One 14-output MobileNet on the real training split; returns ``([model], figures)``."""
    from .networks import WeightedBinaryCrossentropy, build_model, positive_weights

    train_split = dataset.load_split(data_dir, "train")
    val_split = dataset.load_split(data_dir, "val")
    _seed_everything(config.seed)
    weights = positive_weights(train_split.labels, power=config.class_weight_power)
    train_data = make_dataset(train_split.pixels, train_split.labels, config, training=True)
    steps = math.ceil(len(train_split.pixels) / config.batch_size)
    model = build_model(config, outputs=len(FINDINGS))
    _compile(model, config, WeightedBinaryCrossentropy(weights.tolist()))
    figures = _fit(
        model, train_data, steps, val_split.pixels, val_split.labels, FINDINGS, config, "multilabel", stream, verbosity
    )
    figures["training_images"] = int(len(train_split.pixels))
    figures["images_seen"] = figures["training_images"] * figures["epochs_run"]
    figures["positive_weights"] = dict(zip(FINDINGS, map(float, weights)))
    return [model], {"multilabel": figures}


def train_per_finding(config, data_dir, stream, verbosity):
    """14 binary MobileNets, each on its finding's balanced set; returns ``(models, figures)``."""
    from .networks import build_model

    val_split = dataset.load_split(data_dir, "val")
    balanced = {}
    for finding in FINDINGS:
        try:
            balanced[finding] = dataset.load_balanced(data_dir, finding)
        except dataset.DatasetError as exc:
            raise TrainingError(str(exc)) from exc
    models, figures = [], {}
    for index, finding in enumerate(FINDINGS):
        pixels, labels = balanced[finding]
        _seed_everything(config.seed + index)
        train_data = make_dataset(pixels, labels, dataclasses.replace(config, seed=config.seed + index), training=True)
        steps = math.ceil(len(pixels) / config.batch_size)
        model = build_model(config, outputs=1)
        import keras

        _compile(model, config, keras.losses.BinaryCrossentropy())
        fit = _fit(
            model,
            train_data,
            steps,
            val_split.pixels,
            np.asarray(val_split.labels)[:, index],
            (finding,),
            config,
            f"{finding} ({index + 1}/14)",
            stream,
            verbosity,
        )
        fit["training_images"] = int(len(pixels))
        fit["training_positives"] = int(np.asarray(labels).sum())
        fit["images_seen"] = fit["training_images"] * fit["epochs_run"]
        figures[finding] = fit
        models.append(model)
    return models, figures


def keras_files(config):
    """The ``.keras`` file names of an artefact of ``config.strategy``, in FINDINGS order for per-finding."""
    if config.strategy == "multilabel":
        return ["model.keras"]
    return [f"{finding}.keras" for finding in FINDINGS]


def save_weights_only_model(model, path):
    """Save ``model`` as a native ``.keras`` file without its optimizer or loss (it loads with plain Keras)."""
    import keras

    bare = keras.models.clone_model(model)
    bare.set_weights(model.get_weights())
    bare.save(path)


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


def train(config, stdout=None, verbosity=1):
    """Train per ``config``, write the artefact, register it (and activate it if asked); return the ModelVersion."""
    from . import registry
    from .export import ONNX_FILE, INPUT_NAME, OUTPUT_NAMES, check_agreement, export_onnx, onnx_session, run_onnx

    stream = stdout or sys.stdout
    data_dir = config.data_directory()
    try:
        manifest = dataset.read_manifest(data_dir)
    except dataset.DatasetError as exc:
        raise TrainingError(str(exc)) from exc
    size = int(manifest["size"])
    if config.size is None:
        config = dataclasses.replace(config, size=size)
    elif config.size != size:
        raise TrainingError(
            f"The preprocessed data in {data_dir} is {size}x{size} pixels but --size is {config.size}. "
            f"Run manage.py preprocess --size {config.size} (and balance) first, or train with --size {size}."
        )
    name = config.name or config.default_name()
    config = dataclasses.replace(config, name=name)
    output_dir = config.output_directory()
    final = output_dir / name
    from diagnosis.models import ModelVersion

    if final.exists() or ModelVersion.objects.filter(name=name).exists():
        raise TrainingError(f"A model version named {name!r} already exists; choose another --name.")
    output_dir.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    if config.strategy == "multilabel":
        models, fits = train_multilabel(config, data_dir, stream, verbosity)
    else:
        models, fits = train_per_finding(config, data_dir, stream, verbosity)
    fit_seconds = sum(f["seconds"] for f in fits.values())
    images_seen = sum(f["images_seen"] for f in fits.values())

    partial = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=output_dir))
    try:
        files = keras_files(config)
        for model, filename in zip(models, files):
            save_weights_only_model(model, partial / filename)
        export_onnx(models, config.size, partial / ONNX_FILE)

        val = dataset.load_split(data_dir, "val")
        val_pixels = np.asarray(val.pixels)
        val_labels = np.asarray(val.labels)
        agreement = check_agreement(models, partial / ONNX_FILE, val_pixels[:64])
        probabilities, cams = run_onnx(onnx_session(partial / ONNX_FILE), val_pixels)
        thresholds = {name_: youden_threshold(val_labels[:, i], probabilities[:, i]) for i, name_ in enumerate(FINDINGS)}
        metrics = json_safe(
            {
                "val": _validation_metrics(probabilities, val_labels, thresholds),
                "training": {
                    "seconds": round(time.perf_counter() - started, 1),
                    "fit_seconds": round(fit_seconds, 1),
                    "images_per_second": round(images_seen / fit_seconds, 1) if fit_seconds else None,
                    "fits": fits,
                },
                "export": agreement,
            }
        )
        train_split = dataset.load_split(data_dir, "train")
        (partial / PATIENTS_FILE).write_text(
            json.dumps(
                {
                    "train": sorted(map(int, np.unique(train_split.patients))),
                    "val": sorted(map(int, np.unique(val.patients))),
                }
            )
        )
        write_metadata(
            partial,
            {
                "name": name,
                "strategy": config.strategy,
                "findings": list(FINDINGS),
                "thresholds": thresholds,
                "threshold_method": "Youden's J on the validation split (flag when probability >= threshold)",
                "input_size": config.size,
                "serving": {
                    "file": ONNX_FILE,
                    "input": INPUT_NAME,
                    "outputs": list(OUTPUT_NAMES),
                    "pixel_range": [0, 255],
                    "cam_shape": list(cams.shape[1:3]),
                },
                "keras_files": files,
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
    return registry.register(final, activate=config.activate)


def _library_versions():
    import keras
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__}


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
