"""A clinic's records for export tests: patients, X-rays stored from real sample files, readings."""

import datetime
import os
from pathlib import Path

import pytest
from django.utils import timezone

from diagnosis.intake.storing import store_xray
from diagnosis.readings.models import Mark, Reading, ReadingStatus
from diagnosis.records.models import Patient, XRay
from dispredo_core.findings import FINDINGS
from dispredo_core.imaging import open_xray

REPO = Path(__file__).resolve().parents[2]
DICOM_SAMPLE = Path(os.environ.get("DISPREDO_DICOM_SAMPLE") or REPO.parent / "shared" / "data" / "dicom-sample")


def dicom_file(name):
    path = DICOM_SAMPLE / name
    if not path.is_file():
        pytest.skip(f"DICOM sample not found at {DICOM_SAMPLE}; set DISPREDO_DICOM_SAMPLE to its folder to run this test.")
    return path


def store(patient, path, user=None, uploaded_at=None, **fields):
    """An X-ray of ``patient`` stored from the file ``path`` as an upload would store it."""
    data = Path(path).read_bytes()
    xray = store_xray(
        patient=patient, data=data, original_name=Path(path).name, image=open_xray(data), uploaded_by=user, **fields
    )
    if uploaded_at is not None:
        XRay.objects.filter(pk=xray.pk).update(uploaded_at=uploaded_at)
        xray.refresh_from_db()
    return xray


def marks(present=(), not_assessable=()):
    return {
        name: Mark.PRESENT if name in present else Mark.NOT_ASSESSABLE if name in not_assessable else Mark.ABSENT
        for name in FINDINGS
    }


def sign(xray, user=None, present=(), not_assessable=(), version=1, signed_at=None, impression="", reason=""):
    """A signed-off reading (version ``version``) of ``xray``."""
    signed_at = signed_at or timezone.now()
    return Reading.objects.create(
        xray=xray,
        version=version,
        status=ReadingStatus.SIGNED,
        marks=marks(present, not_assessable),
        impression=impression,
        amendment_reason=reason,
        created_by=user,
        updated_by=user,
        signed_by=user,
        signed_at=signed_at,
    )


def draft(xray, user=None, present=(), version=1):
    return Reading.objects.create(xray=xray, version=version, marks=marks(present), created_by=user, updated_by=user)


def at(day, hour=12):
    """An aware datetime on the date ``day`` (YYYY-MM-DD)."""
    return timezone.make_aware(datetime.datetime.combine(datetime.date.fromisoformat(day), datetime.time(hour)))


def patient(mrn, name, sex="U", date_of_birth=None, notes=""):
    return Patient.objects.create(mrn=mrn, name=name, sex=sex, date_of_birth=date_of_birth, notes=notes)
