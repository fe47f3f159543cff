"""manage.py calibrate: a calibrated copy of an uncalibrated cross-validated ensemble, as a new version."""

from pathlib import Path

from django.core.management.base import CommandError

from diagnosis.artefact import ArtefactError
from mltrain.dataset import DatasetError
from mltrain.export import ExportError
from mltrain.recalibration import recalibrate
from mltrain.management.version_option import ModelVersionCommand
from mltrain.registry import artefact_directory, find_version
from mltrain.training import TrainingError


class Command(ModelVersionCommand):
    help = (
        "Align and calibrate the members of a cross-validated ensemble (trained with --folds and "
        "--no-calibrate, or before calibration existed) on the folds they left out, and register "
        "the result as a new model version. Nothing is retrained."
    )

    def add_arguments(self, parser):
        parser.add_argument("--version", dest="version_name", required=True, help="Name of the ensemble's model version.")
        parser.add_argument("--name", required=True, help="Name of the new, calibrated model version.")
        parser.add_argument("--data-dir", type=Path, default=None, help="The preprocessed data it was trained on (default: as recorded).")
        parser.add_argument("--activate", action="store_true", help="Make the new version the one uploads use.")

    def handle(self, *args, **options):
        source = find_version(options["version_name"])
        if source is None:
            raise CommandError(f"No model version named {options['version_name']!r}; list them in the admin.")
        try:
            version = recalibrate(
                artefact_directory(source), options["name"], data_dir=options["data_dir"], activate=options["activate"]
            )
        except (ValueError, TrainingError, DatasetError, ArtefactError, ExportError) as exc:
            raise CommandError(str(exc)) from exc
        metrics = version.metrics
        self.stdout.write(
            f"Registered {version.name}: out-of-fold mean AUROC {metrics['val']['mean_auroc']:.3f} "
            f"(uncalibrated {metrics['uncalibrated_out_of_fold_mean_auroc']:.3f}); "
            f"{'active' if version.is_active else 'not active (use --activate or the admin)'}."
        )
