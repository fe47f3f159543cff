"""Rows for tests that need X-rays with predictions, without going through an upload."""

from django.core.files.base import ContentFile
from django.utils import timezone

from diagnosis.records.models import Prediction, XRay, XRayStatus
from dispredo_core.findings import FINDINGS


def make_xray(patient, *, version=None, flagged=(), uploaded_at=None, status=None, content=b"not read"):
    xray = XRay(patient=patient, sha256=XRay.digest(content), width=64, height=64, original_name="scan.png")
    xray.uploaded_at = uploaded_at or timezone.now()
    xray.image.save("scan.png", ContentFile(content), save=False)
    xray.status = status or (XRayStatus.DONE if version else XRayStatus.PENDING)
    xray.save()
    if version:
        Prediction.objects.bulk_create(
            Prediction(
                xray=xray,
                finding=finding,
                probability=0.9 if finding in flagged else 0.1,
                flagged=finding in flagged,
                model_version=version,
            )
            for finding in FINDINGS
        )
    return xray
