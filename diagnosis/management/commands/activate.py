"""manage.py activate: make a model version the active one, behind the gate (diagnosis.gate.activation)."""

from django.core.management.base import CommandError

from diagnosis.gate.activation import ActivationRefused, activate
from diagnosis.lifecycle.models import ModelVersion
from diagnosis.management.version_option import ModelVersionCommand
from dispredo_core.artefact import ArtefactError


class Command(ModelVersionCommand):
    help = (
        "Make a model version the one uploads use. When another version is active, both are first "
        "compared on the held-out clinic readings (signed-off readings of patients neither trained on), "
        "and a version worse than the active one by more than DISPREDO_GATE_MARGIN is refused unless "
        "--force is given. Every activation is audited."
    )

    def add_arguments(self, parser):
        parser.add_argument("--version", dest="version_name", required=True, help="Model version name.")
        parser.add_argument(
            "--force", action="store_true", help="Activate even when the gate refuses it (audited as an override)."
        )

    def handle(self, *args, version_name, force, verbosity, **options):
        version = ModelVersion.objects.filter(name=version_name).first()
        if version is None:
            raise CommandError(f"No model version named {version_name!r}; list them in the admin.")
        if verbosity:
            self.stdout.write(f"Checking {version.name} against the active version on the held-out clinic readings...")
        try:
            result = activate(version, force=force)
        except ActivationRefused as refused:
            if verbosity:
                for line in refused.result.lines():
                    self.stdout.write(line)
            raise CommandError(str(refused)) from refused
        except ArtefactError as exc:
            raise CommandError(f"{version.name} cannot be compared or activated: {exc}") from exc
        if verbosity:
            for line in result.lines():
                self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS(result.message))
