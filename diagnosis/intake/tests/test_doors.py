"""Every door is the one intake: the same file through the upload page, the API and a C-STORE from a
PACS gives the same patient (cleaned by the same rule), the same audit events, the same upload
metrics and the same refusal, with the file's content refusal alone when there is one."""

import io

import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from prometheus_client import REGISTRY

from diagnosis.interop.dicom_listener import REFUSED, SUCCESS
from diagnosis.records.models import AuditEvent, Patient, XRay
from dispredo_core.dicom import BODY_PART_MESSAGE
from dispredo_site.testing.pacs import running_listener, send

DOORS = ["page", "api", "dicom"]
DOOR_NAMES = {"page": "the upload page", "api": "the API", "dicom": "the DICOM listener"}
CHEST = "rsna_cr_pa_normal.dcm"
HIP = "nema_rg2_cr_hip_jpeg_lossy.dcm"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def through(settings, staff_client, api):
    """``through(door, dataset)``: send a DICOM dataset through ``door`` with no patient chosen, as
    staff would (a file on the page or the API) or a PACS would (C-STORE); returns what the door
    answered: the page's form errors, the API's JSON, or the DIMSE status."""
    settings.DISPREDO_DICOM_USER = "dicom-receiver"
    with running_listener() as port:

        def send_through(door, dataset):
            buffer = io.BytesIO()
            dataset.save_as(buffer, enforce_file_format=True)
            data = buffer.getvalue()
            if door == "page":
                response = staff_client.post(reverse("diagnosis:upload"), {"image": SimpleUploadedFile("x.dcm", data)})
                return response.status_code, response.context["form"].errors if response.status_code == 200 else None
            if door == "api":
                response = api.post(reverse("api:xray-list"), {"image": SimpleUploadedFile("x.dcm", data)}, format="multipart")
                return response.status_code, response.json()
            return send(port, [dataset])[0], None

        yield send_through


def chest_with(dicom_sample, **tags):
    dataset = pydicom.dcmread(dicom_sample / CHEST)
    for name, value in tags.items():
        setattr(dataset, name, value)
    return dataset


def events():
    """The audit trail without who and by which door: (action, object type, patient's record number, detail)."""
    rows = AuditEvent.objects.order_by("pk").values_list("action", "object_type", "patient_mrn", "detail")
    door_free = []
    for action, object_type, mrn, detail in rows:
        for name in DOOR_NAMES.values():
            detail = detail.replace(name, "<door>")
        door_free.append((action, object_type, mrn, detail.split(": ")[0] if action == "create" and object_type == "xray" else detail))
    return door_free


def counts(reason=None):
    stored = REGISTRY.get_sample_value("dispredo_uploads_total", {"outcome": "stored"}) or 0
    refused = REGISTRY.get_sample_value("dispredo_uploads_total", {"outcome": "refused"}) or 0
    why = REGISTRY.get_sample_value("dispredo_upload_refusals_total", {"reason": reason}) or 0 if reason else 0
    return stored, refused, why


@pytest.mark.parametrize("door", DOORS)
def test_a_new_patient_from_the_header_is_cleaned_audited_and_counted_alike(through, door, default_model, dicom_sample):
    before = counts()
    dataset = chest_with(dicom_sample, PatientID=" abc-77 ", PatientName="DOE^JANE  ^^^", PatientSex="F")

    status, _ = through(door, dataset)

    assert status == {"page": 302, "api": 201, "dicom": SUCCESS}[door]
    xray = XRay.objects.get()
    patient = Patient.objects.get()
    # As given, case kept, without the spaces around it; the name as the patient form writes it.
    assert (patient.mrn, patient.name, patient.sex) == ("abc-77", "JANE DOE", "F")
    assert xray.patient == patient and xray.source == door and xray.status == "done"
    assert events() == [
        ("create", "patient", "abc-77", "registered from an X-ray received through <door>"),
        ("create", "xray", "abc-77", "received through <door>"),
    ]
    assert counts() == (before[0] + 1, before[1], 0)


@pytest.mark.parametrize("door", DOORS)
def test_a_patient_id_in_another_case_finds_its_patient_at_every_door(through, door, default_model, dicom_sample, staff):
    registered = Patient.objects.create(mrn="ABC-77", name="Jane Doe", created_by=staff)

    through(door, chest_with(dicom_sample, PatientID="abc-77 "))

    assert XRay.objects.get().patient == registered and Patient.objects.count() == 1
    assert events() == [("create", "xray", "ABC-77", "received through <door>")]


@pytest.mark.parametrize("door", DOORS)
def test_a_file_refused_for_its_content_is_refused_alike_and_only_for_that(through, door, default_model, dicom_sample):
    """A hip with a Patient ID and no patient chosen: the page once also said "Choose a patient"."""
    before = counts("dicom_body_part")
    message = BODY_PART_MESSAGE.format(body_part="HIP")

    status, answer = through(door, pydicom.dcmread(dicom_sample / HIP))

    assert status == {"page": 200, "api": 400, "dicom": REFUSED}[door]
    if door != "dicom":
        assert dict(answer) == {"image": [message]}
    assert not XRay.objects.exists() and not Patient.objects.exists()
    [event] = AuditEvent.objects.all()
    assert (event.action, event.object_type, event.object_id, event.patient, event.patient_mrn) == ("refuse", "xray", 0, None, "10RG2")
    uid = pydicom.dcmread(dicom_sample / HIP, stop_before_pixels=True).SOPInstanceUID
    assert event.detail == f"{DOOR_NAMES[door]}: dicom_body_part: {message} (SOP Instance UID {uid})"
    assert counts("dicom_body_part") == (before[0], before[1] + 1, before[2] + 1)


@pytest.mark.parametrize("door", DOORS)
def test_an_image_stored_already_is_refused_alike(through, door, default_model, dicom_sample):
    dataset = chest_with(dicom_sample)
    through("api", dataset)
    first = XRay.objects.get()
    AuditEvent.objects.all().delete()
    before = counts("duplicate_sop_instance")

    status, answer = through(door, dataset)

    expected = (
        f"This DICOM image (SOP Instance UID {first.sop_instance_uid}) is already stored as X-ray {first.pk} of "
        f"{first.patient} ({first.get_absolute_url()})."
    )
    assert status == {"page": 200, "api": 400, "dicom": REFUSED}[door]
    if door != "dicom":
        assert dict(answer) == {"image": [expected]}
    assert XRay.objects.count() == 1
    [event] = AuditEvent.objects.all()
    assert event.action == "refuse" and event.patient == first.patient
    assert event.detail.startswith(f"{DOOR_NAMES[door]}: duplicate_sop_instance: {expected[:80]}")
    assert counts("duplicate_sop_instance") == (before[0], before[1] + 1, before[2] + 1)
