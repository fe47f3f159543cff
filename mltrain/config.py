"""What a training run is asked to do (``TrainConfig``), checked when it is made.

Each field carries its ``manage.py train`` option in its metadata (``option``): the flag, the help
text and any argparse settings. ``add_arguments`` builds the command's options from them and
``from_options`` the configuration from the parsed options, so a field is declared once.
"""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

STRATEGIES = ("multilabel", "per-finding")
MIN_SIZE = 32  # MobileNet's smallest input
ALPHAS = (0.25, 0.5, 0.75, 1.0)  # keras.applications.MobileNet width multipliers
NORMALISATIONS = ("fixed", "image")  # see networks.build_model
# Options of earlier versions, with the defaults that artefacts made then record.
RETIRED_OPTIONS = {"auxiliary": 0.0, "mixup": 0.0, "repeats": 1, "lr_patience": 0}


class TrainingError(Exception):
    """Training cannot start or finish (missing data, wrong size, name taken...)."""


def option(default, flag, help, **argparse):
    """A dataclass field with ``default`` whose ``manage.py train`` option is ``flag``.

    ``argparse``: what else ``add_argument`` needs (``type``, ``choices``, ``action``). A boolean
    field that defaults to True gets a ``--no-...`` flag with ``action="store_false"``."""
    return field(default=default, metadata={"flag": flag, "help": help, "argparse": argparse})


@dataclass(frozen=True)
class TrainConfig:
    strategy: str = option(
        "multilabel", "--strategy", "multilabel (one network, 14 outputs; default) or per-finding "
        "(14 binary networks on the balanced sets).", choices=STRATEGIES,
    )
    size: int | None = option(
        None, "--size", "Input size in pixels; must match the preprocessed data (default: its size).", type=int,
    )
    alpha: float = option(0.25, "--alpha", "MobileNet width multiplier.", type=float, choices=ALPHAS)
    epochs: int = option(60, "--epochs", "Most epochs (early stopping usually ends sooner).", type=int)
    patience: int = option(
        12, "--patience", "Epochs without a better validation mean AUROC before stopping.", type=int,
    )
    min_epochs: int = option(
        0, "--min-epochs", "Early stopping neither stops the run nor keeps weights within the first N epochs "
        "(default 0); guards --ema, whose average lags at the start.", type=int,
    )
    batch_size: int = option(32, "--batch-size", "Images per training step.", type=int)
    learning_rate: float = option(1e-3, "--learning-rate", "Adam's learning rate.", type=float)
    dropout: float = option(0.3, "--dropout", "Dropout before the head.", type=float)
    weight_decay: float = option(1e-4, "--weight-decay", "L2 on the head.", type=float)
    ema: float = option(
        0.0, "--ema", "Score and keep an exponential moving average of the weights with this momentum "
        "(e.g. 0.99). 0 (default): off.", type=float,
    )
    normalise: str = option(
        "fixed", "--normalise", "Pixels to the network's range: fixed (0..255 to -1..1, default) or image "
        "(each image's own mean and spread).", choices=NORMALISATIONS,
    )
    augment: bool = option(True, "--no-augment", "Train without shifts, rotations and zoom.", action="store_false")
    degrade: float = option(
        0.5, "--degrade", "Share of training images blurred at random, against the source-sharpness shortcut.",
        type=float,
    )
    degrade_min_scale: float = option(
        0.35, "--degrade-min-scale", "The strongest blur: downscale to this fraction of the size.", type=float,
    )
    class_weight_power: float = option(
        0.5, "--class-weight-power", "Multilabel: positive weight per finding is (negatives / positives) ** power.",
        type=float,
    )
    seed: int = option(0, "--seed", "Makes a run repeatable.", type=int)
    folds: int = option(
        1, "--folds", "1: fit on train, select on val. K >= 2 (multilabel): a cross-validated ensemble, one "
        "network per patient-grouped fold of train + val, thresholds from out-of-fold predictions.", type=int,
    )
    calibrate: bool = option(
        True, "--no-calibrate", "With --folds: do not calibrate the networks (standardise on the fold each "
        "left out, then one logistic map per finding).", action="store_false",
    )
    data_dir: str | None = option(
        None, "--data-dir", "Preprocessed data (default DISPREDO_MLTRAIN_DIR/preprocessed).", type=str,
    )
    output_dir: str | None = option(None, "--out", "Artefact folder (default DISPREDO_MODEL_DIR).", type=str)
    name: str | None = option(
        None, "--name", "Model version name (default from strategy, size, alpha, seed, time).", type=str,
    )
    activate: bool = option(
        False, "--activate", "Make the new version the one uploads use, if the activation gate allows it "
        "(manage.py activate).", action="store_true",
    )
    resume: bool = option(
        False, "--resume", "Continue an interrupted run from its last epoch checkpoint (kept under "
        "DISPREDO_MLTRAIN_DIR/runs/NAME): the run named by --name, else the one that wrote a checkpoint last. "
        "Give the options it was started with.", action="store_true",
    )
    distribute: bool = option(
        False, "--distribute", "Train each network on all visible GPUs (tf.distribute.MirroredStrategy); "
        "--batch-size is then the global batch, split among them.", action="store_true",
    )

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}.")
        if self.size is not None and (not isinstance(self.size, int) or self.size < MIN_SIZE):
            raise ValueError(f"size must be an integer of at least {MIN_SIZE}, not {self.size!r}.")
        if self.alpha not in ALPHAS:
            raise ValueError(f"alpha must be one of {', '.join(map(str, ALPHAS))}, not {self.alpha!r}.")
        for name in ("epochs", "patience", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}.")
        if not isinstance(self.min_epochs, int) or not 0 <= self.min_epochs < self.epochs:
            raise ValueError(f"min_epochs must be an integer from 0 to epochs - 1 ({self.epochs - 1}), not {self.min_epochs!r}.")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be in [0, 1), not {self.ema!r}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, not {self.learning_rate!r}.")
        for name in ("dropout", "degrade"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), not {value!r}.")
        if not 0 < self.degrade_min_scale <= 1:
            raise ValueError(f"degrade_min_scale must be in (0, 1], not {self.degrade_min_scale!r}.")
        if self.normalise not in NORMALISATIONS:
            raise ValueError(f"normalise must be one of {', '.join(NORMALISATIONS)}, not {self.normalise!r}.")
        for name in ("weight_decay", "class_weight_power"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, not {getattr(self, name)!r}.")
        if not isinstance(self.folds, int) or self.folds < 1:
            raise ValueError(f"folds must be a positive integer, not {self.folds!r}.")
        if self.folds > 1 and self.strategy != "multilabel":
            raise ValueError("folds (a cross-validated ensemble) applies to the multilabel strategy only.")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, not {self.seed!r}.")
        if self.name is not None and (not self.name or "/" in self.name or self.name.startswith(".")):
            raise ValueError(f"name must be a plain directory name, not {self.name!r}.")

    def data_directory(self):
        from . import dataset

        return Path(self.data_dir) if self.data_dir else dataset.default_directory()

    def output_directory(self):
        from django.conf import settings

        return Path(self.output_dir) if self.output_dir else Path(settings.DISPREDO_MODEL_DIR)

    def default_name(self):
        from django.utils import timezone

        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        folds = f"-cv{self.folds}" if self.folds > 1 else ""
        return f"{self.strategy}-{self.size}px-a{self.alpha}{folds}-s{self.seed}-{stamp}"


def add_arguments(parser):
    """Add an option for each ``TrainConfig`` field to ``parser`` (an argparse parser), its
    destination the field's name and its default the field's."""
    for entry in dataclasses.fields(TrainConfig):
        parser.add_argument(
            entry.metadata["flag"], dest=entry.name, default=entry.default, help=entry.metadata["help"],
            **entry.metadata["argparse"],
        )


def from_options(options):
    """The ``TrainConfig`` of parsed ``options`` (a mapping holding every field's name)."""
    return TrainConfig(**{entry.name: options[entry.name] for entry in dataclasses.fields(TrainConfig)})


def from_recorded(recorded, **changes):
    """The ``TrainConfig`` an artefact's metadata "config" records, with ``changes``.

    Entries of options that older versions had are ignored at their defaults (as every shipped
    model records them); a model trained with one of them set cannot be remade: ``TrainingError``."""
    used = sorted(key for key, default in RETIRED_OPTIONS.items() if recorded.get(key, default) != default)
    if used:
        raise TrainingError(
            f"The model was trained with {', '.join(used)}, which this version of Dispredo no longer has; "
            "train a new one instead."
        )
    known = {entry.name for entry in dataclasses.fields(TrainConfig)}
    return dataclasses.replace(
        TrainConfig(**{key: value for key, value in recorded.items() if key in known}), **changes
    )
