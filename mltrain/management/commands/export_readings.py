"""manage.py export_readings: the signed-off readings as a training data folder in the NIH layout."""

from datetime import date
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from mltrain.readings_export import ExportError, export_readings


class Command(BaseCommand):
    help = (
        "Write the signed-off readings (the newest signed version of each) and their X-rays as a folder "
        "in the NIH ChestX-ray14 layout, patients numbered by a stable pseudonym, for manage.py preprocess."
    )

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, type=Path, help="A new (or empty) folder to write.")
        parser.add_argument(
            "--since", default=None, metavar="YYYY-MM-DD", help="Only readings signed off on or after this date."
        )

    def handle(self, *args, out, since, verbosity, **options):
        try:
            since = date.fromisoformat(since) if since else None
        except ValueError:
            raise CommandError(f"--since takes a date as YYYY-MM-DD, e.g. 2026-01-31, not {since!r}.") from None
        try:
            result = export_readings(out, since=since, progress=verbosity > 0)
        except ExportError as exc:
            raise CommandError(str(exc)) from exc
        if verbosity == 0:
            return
        if result.skipped:
            reasons = "; ".join(f"{count:,} with {reason}" for reason, count in result.skipped.items())
            self.stdout.write(f"Skipped {sum(result.skipped.values()):,} X-ray(s): {reasons}.")
        self.stdout.write(
            self.style.SUCCESS(f"Exported {result.images:,} image(s) of {result.patients:,} patient(s) to {result.out}.")
        )
