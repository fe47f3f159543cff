"""Storing an incoming X-ray: its file and its row."""

from django.core.files.base import ContentFile
from django.db import transaction

from diagnosis.intake import dicom_records
from diagnosis.records.models import XRay


def store_xray(
    *, patient, data, original_name, image, uploaded_by, source="", calling_ae_title="", view_position="",
    clinical_note="", guard_overridden=False, claim=False, on_stored=None,
):
    """Save the file and its row together: if either fails, neither is left behind.

    DICOM is stored as received (.dcm) with its study fields from the header. ``on_stored(xray,
    new_patient)`` runs in the row's transaction (the caller's audit events)."""
    header = dicom_records.header_of(image)
    xray = XRay(
        **(dicom_records.study_fields(header) if header else {}),
        patient=patient,
        original_name=original_name[:255],
        sha256=XRay.digest(data),
        width=image.width,
        height=image.height,
        uploaded_by=uploaded_by,
        view_position=view_position,
        clinical_note=clinical_note,
        guard_overridden=guard_overridden,
        source=source,
        calling_ae_title=calling_ae_title,
    )
    suffix = {"PNG": ".png", "JPEG": ".jpg", "DICOM": ".dcm"}.get(image.format, ".img")
    xray.image.save(f"upload{suffix}", ContentFile(data), save=False)
    try:
        with transaction.atomic():
            new_patient = patient.pk is None
            if new_patient:
                patient.save()
                xray.patient = patient
            xray.save()
            if on_stored is not None:
                on_stored(xray, new_patient)
    except BaseException:
        xray.image.storage.delete(xray.image.name)
        raise
    return xray
