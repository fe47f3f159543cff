"""manage.py operating_point: set a model version's thresholds for a target specificity."""

from django.core.management.base import CommandError

from diagnosis.gate.operating_point import set_operating_point
from diagnosis.lifecycle.models import ModelVersion
from diagnosis.management.version_option import ModelVersionCommand
from dispredo_core.artefact import ArtefactError
from dispredo_core.findings import DISPLAY_NAMES, FINDINGS
from dispredo_core.reliability import HoldoutError


def _rate(values):
    estimate, low, high = values
    if estimate is None:
        return "n/a"
    return f"{estimate:.2f} ({low:.2f}-{high:.2f})"


class Command(ModelVersionCommand):
    help = (
        "Choose a model version's thresholds so that each finding reaches a target specificity on "
        "patients the model did not train on, without retraining. Stored predictions of the version "
        "are re-flagged, and the change is audited."
    )

    def add_arguments(self, parser):
        parser.add_argument("--version", dest="version_name", required=True, help="Model version name.")
        parser.add_argument(
            "--specificity", type=float, required=True, help="Target specificity per finding, e.g. 0.95."
        )

    def handle(self, *args, version_name, specificity, verbosity, **options):
        version = ModelVersion.objects.filter(name=version_name).first()
        if version is None:
            raise CommandError(f"No model version named {version_name!r}; list them in the admin.")
        try:
            changed = set_operating_point(version, specificity)
        except (HoldoutError, ArtefactError) as exc:
            raise CommandError(str(exc)) from exc
        if verbosity:
            self.stdout.write(f"{'finding':<20} {'threshold':>9}  {'sensitivity (95 % CI)':<22} {'specificity (95 % CI)':<22} reliable")
            for name in FINDINGS:
                row = version.operating_point["findings"][name]
                self.stdout.write(
                    f"{DISPLAY_NAMES[name]:<20} {row['threshold']:>9.4f}  {_rate(row['sensitivity']):<22} "
                    f"{_rate(row['specificity']):<22} {'yes' if version.is_reliable(name) else 'no'}"
                )
        self.stdout.write(
            self.style.SUCCESS(
                f"{version.name}: thresholds set for specificity {specificity:g}; "
                f"{changed} stored prediction(s) re-flagged."
            )
        )
