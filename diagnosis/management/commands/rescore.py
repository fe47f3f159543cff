"""manage.py rescore: the intake's door for X-rays stored while no model was active, or whose scoring failed."""

from collections import Counter

from django.core.management.base import BaseCommand, CommandError

from diagnosis.intake.pipeline import score_again
from diagnosis.lifecycle.models import ModelVersion
from diagnosis.records.models import XRay, XRayStatus


class Command(BaseCommand):
    help = "Compute predictions for X-rays stored while no model was active (and, with --failed, failed ones)."

    def add_arguments(self, parser):
        parser.add_argument("--failed", action="store_true", help="Also retry X-rays whose scoring failed.")
        parser.add_argument("--dry-run", action="store_true", help="Only count the X-rays that would be scored.")

    def handle(self, *args, failed=False, dry_run=False, verbosity=1, **options):
        statuses = [XRayStatus.PENDING] + ([XRayStatus.FAILED] if failed else [])
        xrays = XRay.objects.filter(status__in=statuses).order_by("uploaded_at")
        total = xrays.count()
        if dry_run:
            self.stdout.write(f"{total} X-ray(s) would be scored.")
            return
        version = ModelVersion.active()
        if version is None:
            raise CommandError("No model version is active: train one (manage.py train --activate) or activate one in the admin.")
        counts = Counter()  # by the status each ends in (scoring: another process holds it)
        for number, xray in enumerate(xrays.iterator(), start=1):
            counts[score_again(xray, reason="manage.py rescore")] += 1
            if verbosity >= 2:
                self.stdout.write(f"[{number}/{total}] X-ray {xray.pk}: {xray.status}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Scored {counts[XRayStatus.DONE]} of {total} X-ray(s) with {version.name}"
                f"; {counts[XRayStatus.FAILED]} failed."
            )
        )
