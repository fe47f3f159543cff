"""manage.py holdout: give an ensemble made before they existed its holdout scores, reliability,
operating point and input guard."""

from pathlib import Path

from django.core.management.base import CommandError

from diagnosis.management.version_option import ModelVersionCommand
from mltrain.management.new_version import NEW_VERSION_ERRORS
from mltrain.registry import find_version
from mltrain.retrofit import annotate


class Command(ModelVersionCommand):
    help = (
        "Score each image of a cross-validated ensemble's train + val with the members that never saw "
        "its patient, and store those scores, each finding's reliability, the default operating point "
        "and an input guard fitted on its training images in its artefact. Nothing is retrained."
    )

    def add_arguments(self, parser):
        parser.add_argument("--version", dest="version_name", required=True, help="Name of the ensemble's model version.")
        parser.add_argument("--data-dir", type=Path, default=None, help="The preprocessed data it was trained on (default: as recorded).")

    def handle(self, *args, version_name, data_dir, verbosity, **options):
        version = find_version(version_name)
        if version is None:
            raise CommandError(f"No model version named {version_name!r}; list them in the admin.")
        try:
            version = annotate(version, data_dir)
        except NEW_VERSION_ERRORS as exc:
            raise CommandError(str(exc)) from exc
        reliable = version.reliable_findings()
        self.stdout.write(
            self.style.SUCCESS(
                f"{version.name}: holdout scores, reliability and input guard stored; thresholds set for "
                f"specificity {version.operating_point['target_specificity']:g}; reliable: "
                f"{', '.join(reliable) if reliable else 'none'}."
            )
        )
