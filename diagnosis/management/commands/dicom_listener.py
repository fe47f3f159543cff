"""manage.py dicom_listener: receive chest X-rays from a PACS or modality (C-STORE SCP, C-ECHO)."""

from django.conf import settings
from django.core.management.base import BaseCommand

from diagnosis.intake.repair import repair_uploads
from diagnosis.interop.dicom_listener import receiver_user, start_listener


class Command(BaseCommand):
    help = (
        "Run the DICOM listener: chest X-rays sent by C-STORE are stored and scored like uploads. "
        "AE title, port, address and allowed calling AE titles come from the DISPREDO_DICOM_* settings."
    )

    def handle(self, *args, verbosity=1, **options):
        # What a listener (or any process) killed mid-store left: repaired before receiving more.
        repair = repair_uploads(command="dicom_listener")
        if verbosity and (repair.files_removed or repair.xrays_scored or repair.files_kept):
            self.stdout.write(
                f"Repaired interrupted uploads: removed {repair.files_removed} file(s), scored {repair.xrays_scored} "
                f"X-ray(s) again ({repair.files_kept} file(s) the storage could not delete are left for the next repair)."
            )
        user = receiver_user()
        allowed = ", ".join(settings.DISPREDO_DICOM_CALLING_AE_TITLES) or "any"
        self.stdout.write(
            f"DICOM listener {settings.DISPREDO_DICOM_AE_TITLE} on {settings.DISPREDO_DICOM_BIND}:"
            f"{settings.DISPREDO_DICOM_PORT} (calling AE titles: {allowed}; stored as user {user.username}). "
            "Ctrl+C stops it."
        )
        try:
            start_listener(block=True)
        except KeyboardInterrupt:
            self.stdout.write("DICOM listener stopped.")
