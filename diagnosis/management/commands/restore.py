import time
from pathlib import Path

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError

from diagnosis.operations.restore import check_snapshot, restore_snapshot
from diagnosis.operations.snapshot import SnapshotError


class Command(BaseCommand):
    help = (
        "Rebuild an empty installation (a migrated database with no users, patients or model versions) from a "
        "snapshot written by manage.py backup. Every file is checked first; a damaged snapshot changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("folder", metavar="DIR", help="The snapshot folder (holding manifest.json).")
        parser.add_argument(
            "--check", action="store_true", help="Only check that the snapshot is complete and undamaged; restore nothing."
        )

    def handle(self, *args, folder, check=False, verbosity=1, **options):
        started = time.monotonic()
        progress = self.stdout.write if verbosity else None
        try:
            if check:
                manifest = check_snapshot(Path(folder).absolute(), progress=progress)
            else:
                loaded = restore_snapshot(folder, progress=progress)
        except SnapshotError as error:
            raise CommandError(str(error)) from None
        if check and verbosity:
            counts = manifest["counts"]
            self.stdout.write(
                self.style.SUCCESS(
                    f"{folder} is complete: its {len(manifest['files'])} file(s) match the manifest (snapshot of "
                    f"{manifest['created_at']}: {counts.get('diagnosis.patient', 0)} patient(s), "
                    f"{counts.get('diagnosis.xray', 0)} X-ray(s)). Nothing was restored."
                )
            )
        if verbosity and not check:
            for key, count in sorted(loaded.items()):
                meta = apps.get_model(key)._meta
                self.stdout.write(f"  {count} {meta.verbose_name if count == 1 else meta.verbose_name_plural} ({key})")
            self.stdout.write(
                self.style.SUCCESS(
                    f"Restored {folder}: {loaded.get('diagnosis.patient', 0)} patient(s), "
                    f"{loaded.get('diagnosis.xray', 0)} X-ray(s) in {time.monotonic() - started:.1f} s. "
                    "Start Dispredo as usual (bin/start runs setup, which keeps the restored accounts)."
                )
            )
