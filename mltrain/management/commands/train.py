"""manage.py train: train MobileNet models on preprocessed data and register the artefact."""

from django.core.management.base import BaseCommand, CommandError

from diagnosis.gate.activation import ActivationRefused
from dispredo_core.artefact import ArtefactError, read_metadata
from mltrain.config import TrainingError, add_arguments, from_options
from mltrain.dataset import DatasetError
from mltrain.export import ExportError
from mltrain.package import summary_table
from mltrain.registry import artefact_directory, train_and_register


class Command(BaseCommand):
    help = (
        "Train the MobileNet models (per-finding on the balanced sets, or one multilabel model), "
        "choose thresholds on the validation split, export model.onnx and register the model version."
    )

    def add_arguments(self, parser):
        add_arguments(parser)  # one option per TrainConfig field (mltrain.config)
        parser.add_argument(
            "--force", action="store_true", help="With --activate: activate even when the gate refuses (audited)."
        )

    def handle(self, *args, **options):
        verbosity = options["verbosity"]
        if options["force"] and not options["activate"]:
            raise CommandError("--force overrides the activation gate, so it needs --activate.")
        try:
            config = from_options(options)
            version = train_and_register(config, stdout=self.stdout, verbosity=verbosity, force=options["force"])
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
