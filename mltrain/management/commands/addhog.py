"""manage.py addhog: a cross-validated ensemble joined with HOG + logistic regression, as a new version."""

from django.core.management.base import CommandError

from dispredo_core.artefact import read_metadata
from mltrain.hybrid import add_hog
from mltrain.management.new_version import NEW_VERSION_ERRORS, NewVersionCommand
from mltrain.package import summary_table
from mltrain.registry import artefact_directory, name_taken, register


class Command(NewVersionCommand):
    help = (
        "Join each network of a calibrated cross-validated ensemble with a logistic regression on HOG "
        "features fitted on the same fold, calibrate the joint members on the folds they left out and "
        "register the result as a new model version. The networks are not retrained."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--strength", type=float, default=None,
            help="Logistic regression C (default: the best on the validation split, as python -m mltrain.lab.baselines chooses).",
        )

    def handle(self, *args, **options):
        source = self.source_directory(options["version_name"])
        if options["strength"] is not None and options["strength"] <= 0:
            raise CommandError("--strength must be positive.")
        try:
            directory = add_hog(
                source, options["name"], data_dir=options["data_dir"],
                strength=options["strength"], name_taken=name_taken, stream=self.stdout,
            )
            version = register(directory, activate=options["activate"])
        except NEW_VERSION_ERRORS as exc:
            raise CommandError(str(exc)) from exc
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
