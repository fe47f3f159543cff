"""manage.py dicom_listener: receive chest X-rays from a PACS or modality (C-STORE SCP, C-ECHO)."""

from django.conf import settings
from django.core.management.base import BaseCommand

from diagnosis.interop.dicom_listener import receiver_user, start_listener


class Command(BaseCommand):
    help = (
        "Run the DICOM listener: chest X-rays sent by C-STORE are stored and scored like uploads. "
        "AE title, port, address and allowed calling AE titles come from the DISPREDO_DICOM_* settings."
    )

    def handle(self, *args, **options):
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
