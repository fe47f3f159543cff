"""The DICOM listener as a PACS sees it: C-ECHO, C-STORE of real files over a local port, audit."""

import pydicom
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from pydicom.data import get_testdata_file
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from diagnosis.interop.dicom_listener import CANNOT_UNDERSTAND, REFUSED, SUCCESS
from diagnosis.records.models import AuditEvent, Patient, XRay, XRayStatus
from dispredo_core.dicom import BODY_PART_MESSAGE, MODALITY_MESSAGE
from dispredo_site.testing.helpers import stored_files
from dispredo_site.testing.pacs import running_listener, send

STORED = ["siim_cr_mono2_jpeg.dcm", "nema_rg1_cr_chest_jpegls.dcm", "nih_dx_secondary_capture.dcm"]


@pytest.fixture
def listener(settings):
    settings.DISPREDO_DICOM_USER = "dicom-receiver"
    with running_listener() as port:
        yield port


@pytest.mark.django_db(transaction=True)
def test_a_pacs_stores_chest_xrays_and_other_objects_are_refused(listener, default_model, dicom_sample, private_media):
    ae = AE(ae_title="PACS")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", listener, ae_title="DISPREDO")
    assert assoc.is_established
    assert assoc.send_c_echo().Status == SUCCESS
    assoc.release()

    chests = [pydicom.dcmread(dicom_sample / name) for name in STORED]
    others = [
        pydicom.dcmread(dicom_sample / "nema_rg2_cr_hip_jpeg_lossy.dcm"),
        pydicom.dcmread(get_testdata_file("CT_small.dcm")),
        pydicom.dcmread(dicom_sample / "broken_j2k_codestream_chest.dcm"),
        pydicom.dcmread(dicom_sample / "siim_cr_mono2_jpeg.dcm"),  # the same SOP instance again
        pydicom.dcmread(dicom_sample / "fuji_dx_thorax_mono1_small.dcm"),  # refused by the input guard
    ]
    statuses = send(listener, chests + others)
    assert statuses[: len(chests)] == [SUCCESS] * len(chests)
    assert statuses[len(chests) :] == [REFUSED, REFUSED, CANNOT_UNDERSTAND, REFUSED, REFUSED]

    user = get_user_model().objects.get(username="dicom-receiver")
    assert not user.has_usable_password() and not user.is_staff
    xrays = XRay.objects.order_by("pk")
    assert [x.sop_instance_uid for x in xrays] == [d.SOPInstanceUID for d in chests]
    assert all(x.status == XRayStatus.DONE and x.uploaded_by == user and x.predictions.count() == 14 for x in xrays)
    assert all(x.image.name.endswith(".dcm") for x in xrays)
    assert len(stored_files(private_media)) == len(chests)
    assert Patient.objects.filter(mrn="9RG1").exists()

    # The intake's events, as for an upload: the new patients, each X-ray with its door and AE, each refusal.
    stored_events = AuditEvent.objects.filter(action="create", object_type="xray").order_by("pk")
    assert [(e.object_id, e.username, e.detail) for e in stored_events] == [
        (x.pk, "dicom-receiver", f"received through the DICOM listener: {x.sop_instance_uid}.dcm from AE PACS") for x in xrays
    ]
    assert all(x.source == "dicom" and x.calling_ae_title == "PACS" for x in xrays)
    new_patients = AuditEvent.objects.filter(action="create", object_type="patient")
    assert {e.patient for e in new_patients} == {x.patient for x in xrays}
    assert all(e.detail == "registered from an X-ray received through the DICOM listener" for e in new_patients)
    refused_events = list(AuditEvent.objects.filter(action="refuse").order_by("pk"))
    assert len(refused_events) == len(others)
    assert all(e.object_id == 0 and e.detail.startswith("the DICOM listener: ") for e in refused_events)
    assert BODY_PART_MESSAGE.format(body_part="HIP")[:60] in refused_events[0].detail
    assert refused_events[0].patient is None and refused_events[0].patient_mrn == "10RG2"
    assert MODALITY_MESSAGE.format(modality="CT")[:60] in refused_events[1].detail
    assert "duplicate_sop_instance" in refused_events[3].detail and refused_events[3].patient is not None
    assert "not_chest_xray" in refused_events[4].detail


@pytest.mark.django_db(transaction=True)
def test_an_unknown_calling_ae_title_is_not_let_in(listener, default_model, dicom_sample):
    assert send(listener, [pydicom.dcmread(dicom_sample / "siim_cr_mono2_jpeg.dcm")], calling_ae="STRANGER") is None
    assert not XRay.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_listener_keeps_no_database_connection_after_an_association(listener, default_model, dicom_sample):
    if connection.vendor != "postgresql":
        pytest.skip("counts PostgreSQL's sessions; SQLite has no server to ask")

    def sessions():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            return {row[0] for row in cursor.fetchall()}

    before = sessions()
    assert send(listener, [pydicom.dcmread(dicom_sample / "siim_cr_mono2_jpeg.dcm")]) == [SUCCESS]
    assert XRay.objects.count() == 1
    assert sessions() - before == set()
