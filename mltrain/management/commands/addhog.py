"""manage.py addhog: a cross-validated ensemble joined with HOG + logistic regression, as a new version."""

from pathlib import Path

from django.core.management.base import CommandError

from diagnosis.artefact import ArtefactError
from mltrain.dataset import DatasetError
from mltrain.export import ExportError
from mltrain.hybrid import add_hog
from mltrain.management.version_option import ModelVersionCommand
from mltrain.registry import artefact_directory, find_version
from mltrain.training import TrainingError, summary_table


class Command(ModelVersionCommand):
    help = (
        "Join each network of a calibrated cross-validated ensemble with a logistic regression on HOG "
        "features fitted on the same fold, calibrate the joint members on the folds they left out and "
        "register the result as a new model version. The networks are not retrained."
    )

    def add_arguments(self, parser):
        parser.add_argument("--version", dest="version_name", required=True, help="Name of the ensemble's model version.")
        parser.add_argument("--name", required=True, help="Name of the new model version.")
        parser.add_argument("--data-dir", type=Path, default=None, help="The preprocessed data it was trained on (default: as recorded).")
        parser.add_argument(
            "--strength", type=float, default=None,
            help="Logistic regression C (default: the best on the validation split, as python -m mltrain.baselines chooses).",
        )
        parser.add_argument("--activate", action="store_true", help="Make the new version the one uploads use.")

    def handle(self, *args, **options):
        source = find_version(options["version_name"])
        if source is None:
            raise CommandError(f"No model version named {options['version_name']!r}; list them in the admin.")
        if options["strength"] is not None and options["strength"] <= 0:
            raise CommandError("--strength must be positive.")
        try:
            version = add_hog(
                artefact_directory(source), options["name"], data_dir=options["data_dir"],
                strength=options["strength"], activate=options["activate"], stream=self.stdout,
            )
        except (ValueError, TrainingError, DatasetError, ArtefactError, ExportError) as exc:
            raise CommandError(str(exc)) from exc
        from diagnosis.artefact import read_metadata

        metadata = read_metadata(artefact_directory(version))
        for line in summary_table(metadata):
            self.stdout.write(line)
        hog = metadata["hog"]
        self.stdout.write(
            f"Registered {version.name}: out-of-fold mean AUROC {metadata['metrics']['val']['mean_auroc']:.3f} "
            f"(networks alone {hog['networks_out_of_fold_mean_auroc']:.3f}, HOG + LR alone "
            f"{hog['hog_out_of_fold_mean_auroc']:.3f}); "
            f"{'active' if version.is_active else 'not active (use --activate or the admin)'}."
        )
