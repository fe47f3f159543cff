"""manage.py repair_uploads: remove what uploads interrupted by a dead process left, score their X-rays."""

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection

from diagnosis.intake.models import IncomingFile
from diagnosis.intake.repair import repair_uploads
from diagnosis.records.models import XRayStatus


class Command(BaseCommand):
    help = (
        "Repair uploads interrupted by a process that died: remove their partial files and journal rows, "
        "and score again the X-rays they left scoring (or pending while a model is active). Only dead "
        "processes' uploads are touched, so it is safe to run at any time; bin/start runs it before serving."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be repaired.")

    def handle(self, *args, dry_run=False, verbosity=1, **options):
        self.check_database()
        repair = repair_uploads(dry_run=dry_run, progress=self.stdout.write if verbosity >= 2 else None)
        if dry_run:
            self.stdout.write(
                f"{repair.files_found} interrupted upload file(s) would be removed and "
                f"{repair.xrays_found} X-ray(s) scored again."
            )
            return
        if verbosity and not (repair.files_found or repair.xrays_found):
            self.stdout.write("Nothing to repair: no upload was interrupted.")
        elif verbosity:
            scored = repair.scored
            self.stdout.write(
                self.style.SUCCESS(
                    f"Removed {repair.files_removed} interrupted upload file(s); scored {repair.xrays_scored} X-ray(s) "
                    f"again: {scored[XRayStatus.DONE]} done, {scored[XRayStatus.FAILED]} failed, "
                    f"{scored[XRayStatus.PENDING]} pending, {scored[XRayStatus.SCORING]} taken by a running process."
                )
            )
        if repair.files_kept:
            raise CommandError(
                f"{repair.files_kept} interrupted upload file(s) could not be removed from the X-ray storage "
                f"({', '.join(sorted(set(repair.store_errors)))}); they stay listed for the next repair. Check that "
                "the storage (DISPREDO_STORAGE, DISPREDO_MEDIA_ROOT or the S3 settings) is reachable and writable, "
                "then run manage.py repair_uploads again."
            )

    def check_database(self):
        try:
            tables = connection.introspection.table_names()
        except DatabaseError as exc:
            raise CommandError(
                f"Cannot reach the database ({type(exc).__name__}): check DATABASE_URL (or DISPREDO_DATA_DIR for "
                "SQLite), then run manage.py repair_uploads again."
            ) from exc
        if IncomingFile._meta.db_table not in tables:
            raise CommandError(
                "The database has no journal of incoming files yet: run manage.py setup (it applies the "
                "migrations), then manage.py repair_uploads."
            )
