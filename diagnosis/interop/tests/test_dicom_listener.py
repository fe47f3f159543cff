"""The DICOM listener as a PACS sees it: C-ECHO, C-STORE of real files over a local port, audit."""

import socket

import pydicom
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from pydicom.data import get_testdata_file
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from diagnosis.interop.dicom_listener import CANNOT_UNDERSTAND, REFUSED, SUCCESS, start_listener
from diagnosis.records.models import AuditEvent, Patient, XRay, XRayStatus
from dispredo_core.dicom import BODY_PART_MESSAGE, MODALITY_MESSAGE
from dispredo_site.testing.helpers import stored_files

STORED = ["siim_cr_mono2_jpeg.dcm", "nema_rg1_cr_chest_jpegls.dcm", "nih_dx_secondary_capture.dcm"]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def listener(settings):
    settings.DISPREDO_DICOM_USER = "dicom-receiver"
    port = free_port()
    server = start_listener(bind="127.0.0.1", port=port, ae_title="DISPREDO", calling_ae_titles=["PACS"], block=False)
    yield port
    server.shutdown()


def send(port, datasets, calling_ae="PACS"):
    """C-STORE each dataset as a PACS would; returns the status of each (None if no association)."""
    ae = AE(ae_title=calling_ae)
    for dataset in datasets:
        ae.add_requested_context(dataset.SOPClassUID, dataset.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="DISPREDO")
    if not assoc.is_established:
        return None
    try:
        return [assoc.send_c_store(dataset).Status for dataset in datasets]
    finally:
        assoc.release()


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

    events = AuditEvent.objects.filter(object_type="dicom").order_by("pk")
    assert len(events) == len(chests) + len(others)
    assert all(e.detail.startswith("from AE PACS; SOP Instance UID ") for e in events)
    stored_events, refused_events = events[: len(chests)], events[len(chests) :]
    assert [e.object_id for e in stored_events] == [x.pk for x in xrays]
    assert all(e.patient is not None and "stored as X-ray" in e.detail for e in stored_events)
    assert all(e.patient is None and e.object_id == 0 and "refused: " in e.detail for e in refused_events)
    assert BODY_PART_MESSAGE.format(body_part="HIP")[:60] in refused_events[0].detail
    assert refused_events[0].patient_mrn == "10RG2"
    assert MODALITY_MESSAGE.format(modality="CT")[:60] in refused_events[1].detail


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
