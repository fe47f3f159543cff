"""manage.py calibrate: a calibrated copy of an uncalibrated cross-validated ensemble, as a new version."""

from django.core.management.base import CommandError

from mltrain.management.new_version import NEW_VERSION_ERRORS, NewVersionCommand
from mltrain.recalibration import recalibrate
from mltrain.registry import name_taken, register


class Command(NewVersionCommand):
    help = (
        "Align and calibrate the members of a cross-validated ensemble (trained with --folds and "
        "--no-calibrate, or before calibration existed) on the folds they left out, and register "
        "the result as a new model version. Nothing is retrained."
    )

    def handle(self, *args, **options):
        source = self.source_directory(options["version_name"])
        try:
            directory = recalibrate(source, options["name"], data_dir=options["data_dir"], name_taken=name_taken)
            version = register(directory, activate=options["activate"])
        except NEW_VERSION_ERRORS as exc:
            raise CommandError(str(exc)) from exc
        metrics = version.metrics
        self.stdout.write(
            f"Registered {version.name}: out-of-fold mean AUROC {metrics['val']['mean_auroc']:.3f} "
            f"(uncalibrated {metrics['uncalibrated_out_of_fold_mean_auroc']:.3f}); "
            f"{'active' if version.is_active else 'not active (use --activate or the admin)'}."
        )
