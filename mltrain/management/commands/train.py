"""manage.py train: train MobileNet models on preprocessed data and register the artefact."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from diagnosis.activation import ActivationRefused
from diagnosis.artefact import ArtefactError, read_metadata
from mltrain.dataset import DatasetError
from mltrain.export import ExportError
from mltrain.registry import artefact_directory
from mltrain.training import ALPHAS, NORMALISATIONS, STRATEGIES, TrainConfig, TrainingError, summary_table, train


class Command(BaseCommand):
    help = (
        "Train the MobileNet models (per-finding on the balanced sets, or one multilabel model), "
        "choose thresholds on the validation split, export model.onnx and register the model version."
    )

    def add_arguments(self, parser):
        defaults = TrainConfig()
        parser.add_argument("--strategy", choices=STRATEGIES, default=defaults.strategy, help="Default multilabel.")
        parser.add_argument(
            "--size", type=int, default=None, help="Input size in pixels; must match the preprocessed data (default: its size)."
        )
        parser.add_argument("--alpha", type=float, choices=ALPHAS, default=defaults.alpha, help="MobileNet width multiplier.")
        parser.add_argument("--epochs", type=int, default=defaults.epochs, help="Most epochs (early stopping usually ends sooner).")
        parser.add_argument("--patience", type=int, default=defaults.patience, help="Epochs without a better validation AUROC before stopping.")
        parser.add_argument(
            "--min-epochs", type=int, default=defaults.min_epochs,
            help="Early stopping neither stops the run nor keeps weights within the first N epochs (default 0); "
            "guards --ema, whose average lags at the start.",
        )
        parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
        parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
        parser.add_argument(
            "--lr-patience", type=int, default=defaults.lr_patience,
            help="Halve the learning rate after this many epochs without a better validation AUROC (0: never).",
        )
        parser.add_argument("--dropout", type=float, default=defaults.dropout)
        parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="L2 on the head.")
        parser.add_argument(
            "--ema", type=float, default=defaults.ema,
            help="Score and keep an exponential moving average of the weights with this momentum (e.g. 0.99). 0 (default): off.",
        )
        parser.add_argument(
            "--normalise", choices=NORMALISATIONS, default=defaults.normalise,
            help="Pixels to the network's range: fixed (0..255 to -1..1, default) or image (each image's own mean and spread).",
        )
        parser.add_argument("--degrade", type=float, default=defaults.degrade, help="Share of sharp training images blurred at random.")
        parser.add_argument("--no-augment", action="store_true", help="Train without shifts, rotations and zoom.")
        parser.add_argument(
            "--auxiliary", type=float, default=defaults.auxiliary,
            help="Multilabel: weight of a second training loss on each image's recorded age, sex and view "
            "(AP/PA), which every image has; the served model does not output them. 0 (default): off.",
        )
        parser.add_argument(
            "--mixup", type=float, default=defaults.mixup,
            help="Mix each training image and its labels with another (Beta concentration, e.g. 0.2). 0 (default): off.",
        )
        parser.add_argument("--seed", type=int, default=defaults.seed, help="Makes a run repeatable.")
        parser.add_argument(
            "--folds", type=int, default=defaults.folds,
            help="1: fit on train, select on val. K >= 2 (multilabel): a cross-validated ensemble, one network per "
            "patient-grouped fold of train + val, thresholds from out-of-fold predictions.",
        )
        parser.add_argument(
            "--repeats", type=int, default=defaults.repeats,
            help="With --folds: networks per fold, each from its own seed; the ensemble averages all "
            "folds x repeats of them. Default 1.",
        )
        parser.add_argument(
            "--no-calibrate", action="store_true",
            help="With --folds: do not calibrate the networks (standardise on the fold each left out, then one logistic map per finding).",
        )
        parser.add_argument("--data-dir", type=Path, default=None, help="Preprocessed data (default DISPREDO_MLTRAIN_DIR/preprocessed).")
        parser.add_argument("--out", type=Path, default=None, help="Artefact folder (default DISPREDO_MODEL_DIR).")
        parser.add_argument("--name", default=None, help="Model version name (default from strategy, size, alpha, seed, time).")
        parser.add_argument(
            "--activate", action="store_true",
            help="Make the new version the one uploads use, if the activation gate allows it (manage.py activate).",
        )
        parser.add_argument(
            "--force", action="store_true", help="With --activate: activate even when the gate refuses (audited)."
        )

    def handle(self, *args, **options):
        verbosity = options["verbosity"]
        if options["force"] and not options["activate"]:
            raise CommandError("--force overrides the activation gate, so it needs --activate.")
        try:
            config = TrainConfig(
                strategy=options["strategy"],
                size=options["size"],
                alpha=options["alpha"],
                epochs=options["epochs"],
                patience=options["patience"],
                min_epochs=options["min_epochs"],
                batch_size=options["batch_size"],
                learning_rate=options["learning_rate"],
                lr_patience=options["lr_patience"],
                dropout=options["dropout"],
                weight_decay=options["weight_decay"],
                ema=options["ema"],
                normalise=options["normalise"],
                degrade=options["degrade"],
                augment=not options["no_augment"],
                auxiliary=options["auxiliary"],
                mixup=options["mixup"],
                seed=options["seed"],
                folds=options["folds"],
                repeats=options["repeats"],
                calibrate=not options["no_calibrate"],
                data_dir=str(options["data_dir"]) if options["data_dir"] else None,
                output_dir=str(options["out"]) if options["out"] else None,
                name=options["name"],
                activate=options["activate"],
            )
            version = train(config, stdout=self.stdout, verbosity=verbosity, force=options["force"])
        except ActivationRefused as refused:
            for line in refused.result.lines() if verbosity else ():
                self.stdout.write(line)
            raise CommandError(str(refused)) from refused
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        except (TrainingError, DatasetError, ArtefactError, ExportError) as exc:
            raise CommandError(str(exc)) from exc
        if verbosity == 0:
            return
        metadata = read_metadata(artefact_directory(version))
        for line in summary_table(metadata):
            self.stdout.write(line)
        self.stdout.write(f"Figures and thresholds from {metadata['metrics'].get('selection', 'the validation split')}.")
        training = metadata["metrics"]["training"]
        export = metadata["metrics"]["export"]
        self.stdout.write(
            f"Trained in {training['seconds']:.0f} s ({training['images_per_second']} images/s); "
            f"ONNX agrees with Keras to {export['max_abs_probability_difference']:.1e}, "
            f"{export['onnx_latency_ms_one_image']:.2f} ms per image."
        )
        if version.activation is not None:
            for line in version.activation.lines():
                self.stdout.write(line)
            self.stdout.write(version.activation.message)
        state = "active" if version.is_active else "not active (use --activate, manage.py activate or the admin)"
        self.stdout.write(self.style.SUCCESS(f"Registered model version {version.name} at {version.artefact_path}, {state}."))
