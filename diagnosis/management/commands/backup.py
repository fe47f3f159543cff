import time

from django.core.management.base import BaseCommand, CommandError

from diagnosis.operations.backup import write_snapshot
from diagnosis.operations.snapshot import SnapshotError


class Command(BaseCommand):
    help = (
        "Write a consistent snapshot of this installation into a new folder: the database rows, every X-ray "
        "file, the model artefacts in use and a manifest with counts and SHA-256 checksums (see README, Backups)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, metavar="DIR", help="A new (or empty) folder for the snapshot.")

    def handle(self, *args, out, verbosity=1, **options):
        started = time.monotonic()
        try:
            manifest = write_snapshot(out, progress=self.stdout.write if verbosity else None)
        except SnapshotError as error:
            raise CommandError(str(error)) from None
        if verbosity:
            counts = manifest["counts"]
            size = sum(entry["size"] for entry in manifest["files"])
            self.stdout.write(
                self.style.SUCCESS(
                    f"Snapshot written to {out}: {counts.get('diagnosis.patient', 0)} patient(s), "
                    f"{counts.get('diagnosis.xray', 0)} X-ray(s), {counts.get('diagnosis.modelversion', 0)} model "
                    f"version(s), {len(manifest['files'])} file(s), {size / 1e6:.1f} MB in {time.monotonic() - started:.1f} s."
                )
            )
