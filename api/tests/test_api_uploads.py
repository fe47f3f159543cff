"""Uploading through the API: the upload page's code path, so the same checks, messages, stored
rows and audit events; 201 with the 14 findings."""


import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from api.xrays import OVERRIDE_HINT
from diagnosis.intake.content import INVALID_IMAGE_MESSAGE
from diagnosis.intake.dicom_records import WRONG_PATIENT_MESSAGE
from diagnosis.intake.pipeline import GUARD_OVERRIDE_DETAIL
from diagnosis.records.models import AuditEvent, Patient, Prediction, XRay
from dispredo_core.findings import FINDINGS
from dispredo_core.guard import REFUSAL_MESSAGE
from dispredo_site.testing.helpers import stored_files
from dispredo_site.testing.upload_files import INVALID_UPLOADS

XRAYS = reverse("api:xray-list")
PAGE = reverse("diagnosis:upload")


def send(client, name, content, **fields):
    return client.post(XRAYS, {"image": SimpleUploadedFile(name, content), **fields}, format="multipart")


def page_errors(staff_client, name, content, **fields):
    """What the upload page's form says to the same upload."""
    response = staff_client.post(PAGE, {"image": SimpleUploadedFile(name, content), **fields})
    assert response.status_code == 200
    return response.context["form"].errors


def audit_rows():
    return list(AuditEvent.objects.order_by("pk").values_list("username", "action", "object_type", "detail"))


def door_free(rows):
    """``audit_rows()`` with the door's name in each detail replaced by <door>: the page's and the
    API's events are the same events, each naming the door it came by."""
    return [(*row[:3], row[3].replace("the upload page", "<door>").replace("the API", "<door>")) for row in rows]


@pytest.mark.django_db
def test_it_stores_and_scores_a_real_xray_and_answers_201_with_the_14_findings(api, staff, patient, tiny_model, sample_images, private_media):
    path = sample_images["px_256"]

    response = send(api, path.name, path.read_bytes(), patient=patient.pk, view_position="PA", clinical_note="Cough")

    assert response.status_code == 201
    body = response.json()
    xray = XRay.objects.get()
    assert body["id"] == xray.pk and response["Location"] == body["links"]["api"]
    assert body["status"] == "done" and body["patient"] == {"id": patient.pk, "mrn": "MRN001", "name": "Ada Lovelace"}
    assert (body["view_position"], body["clinical_note"], body["uploaded_by"]) == ("PA", "Cough", "nurse")
    assert (body["width"], body["height"], body["original_name"]) == (256, 256, path.name)
    assert body["model_version"] == {"id": tiny_model.pk, "name": tiny_model.name}
    assert body["reading_state"] == "unread" and body["guard_overridden"] is False
    assert [f["finding"] for f in body["findings"]] == list(FINDINGS)
    stored = {p.finding: p for p in Prediction.objects.filter(xray=xray)}
    for finding in body["findings"]:
        name = finding["finding"]
        assert 0.0 <= finding["probability"] <= 1.0
        assert finding["probability"] == stored[name].probability
        assert finding["threshold"] == float(tiny_model.thresholds[name])
        assert finding["reliable"] == tiny_model.is_reliable(name)
        assert finding["flagged"] == tiny_model.flags(name, finding["probability"]) == stored[name].flagged
        assert set(finding["reliability"]) == {"auroc", "low", "high", "positives"}
    assert body["links"]["image"].endswith(reverse("api:xray-image", args=[xray.pk]))
    assert body["links"]["page"].endswith(xray.get_absolute_url())
    assert [f.read_bytes() for f in stored_files(private_media)] == [path.read_bytes()]
    assert audit_rows() == [("nurse", "create", "xray", "received through the API: " + path.name)]
    assert xray.source == "api"


@pytest.mark.django_db
def test_reliability_figures_come_from_the_model_version(api, patient, default_model, sample_images):
    body = send(api, "chest.png", sample_images["gray_1024"].read_bytes(), patient=patient.pk).json()
    hernia = next(f for f in body["findings"] if f["finding"] == "Hernia")
    figures = default_model.reliability["findings"]["Hernia"]
    assert hernia["reliability"] == {key: figures[key] for key in ("auroc", "low", "high", "positives")}
    assert hernia["operating_point"] == {
        key: default_model.operating_point["findings"]["Hernia"][key] for key in ("sensitivity", "specificity")
    }


@pytest.mark.django_db
def test_it_writes_the_audit_events_the_upload_page_writes(api, staff_client, tiny_model, sample_images):
    content = sample_images["px_64"].read_bytes()
    staff_client.post(PAGE, {"image": SimpleUploadedFile("a.png", content), "new_mrn": "P-1", "new_name": "Page Patient"})
    by_page = audit_rows()
    AuditEvent.objects.all().delete()

    response = send(api, "a.png", content, new_mrn="P-2", new_name="Api Patient")

    assert response.status_code == 201
    assert door_free(by_page) == door_free(audit_rows()) == [
        ("nurse", "create", "patient", "registered from an X-ray received through <door>"),
        ("nurse", "create", "xray", "received through <door>: a.png"),
    ]
    assert by_page[1][3] == "received through the upload page: a.png"
    assert Patient.objects.get(mrn="P-2").created_by.username == "nurse"


@pytest.mark.django_db
@pytest.mark.parametrize("label", INVALID_UPLOADS)
def test_it_refuses_what_the_upload_page_refuses_with_its_message(api, staff_client, patient, tiny_model, private_media, label):
    name, content = INVALID_UPLOADS[label]
    expected = page_errors(staff_client, name, content, patient=patient.pk)

    response = send(api, name, content, patient=patient.pk)

    assert response.status_code == 400
    assert response.json() == expected == {"image": [INVALID_IMAGE_MESSAGE]}
    assert not XRay.objects.exists() and stored_files(private_media) == []
    refusal = f"<door>: invalid_image: {INVALID_IMAGE_MESSAGE}"
    assert door_free(audit_rows()) == [("nurse", "refuse", "xray", refusal)] * 2  # the page's, then the API's


@pytest.mark.django_db
def test_it_refuses_an_upload_without_a_patient_or_a_file_as_the_page_does(api, staff_client, tiny_model, sample_images):
    content = sample_images["px_64"].read_bytes()
    expected = page_errors(staff_client, "a.png", content)
    response = send(api, "a.png", content)
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": expected["__all__"]}
    assert expected["__all__"] == ["Choose a patient, or enter a new patient's record number and name."]

    no_file = api.post(XRAYS, {"patient": 1}, format="multipart")
    assert no_file.json()["image"] == ["Please choose an X-ray image file."]


@pytest.mark.django_db
def test_the_input_guard_refuses_it_with_the_pages_message_and_the_override_hint(api, staff_client, default_model, chart_png, private_media):
    expected = page_errors(staff_client, "chart.png", chart_png, new_mrn="NEW-1", new_name="Grace Hopper")

    response = send(api, "chart.png", chart_png, new_mrn="NEW-1", new_name="Grace Hopper")

    assert response.status_code == 400
    assert response.json() == {"image": [REFUSAL_MESSAGE], "score_anyway": [OVERRIDE_HINT]}
    assert expected == {"image": [REFUSAL_MESSAGE]}
    assert not XRay.objects.exists() and not Patient.objects.exists() and stored_files(private_media) == []
    assert door_free(audit_rows()) == [("nurse", "refuse", "xray", f"<door>: not_chest_xray: {REFUSAL_MESSAGE}")] * 2


@pytest.mark.django_db
def test_score_anyway_scores_it_and_audits_the_override(api, patient, default_model, chart_png):
    response = send(api, "chart.png", chart_png, patient=patient.pk, score_anyway="true")

    assert response.status_code == 201
    body = response.json()
    assert body["guard_overridden"] is True and body["status"] == "done" and len(body["findings"]) == 14
    assert audit_rows() == [
        ("nurse", "create", "xray", "received through the API: chart.png"),
        ("nurse", "change", "xray", GUARD_OVERRIDE_DETAIL),
    ]


@pytest.mark.django_db
def test_a_dicom_naming_another_patient_is_refused_with_the_pages_message(api, staff_client, patient, default_model, dicom_sample, private_media):
    content = (dicom_sample / "nema_rg1_cr_chest_j2k_lossy.dcm").read_bytes()
    expected = page_errors(staff_client, "x.dcm", content, patient=patient.pk)

    response = send(api, "x.dcm", content, patient=patient.pk)

    assert response.status_code == 400
    assert response.json() == expected == {"patient": [WRONG_PATIENT_MESSAGE.format(header_id="9RG1", mrn="MRN001")]}
    assert not XRay.objects.exists() and stored_files(private_media) == []


@pytest.mark.django_db
def test_a_chest_dicom_is_stored_under_the_patient_its_header_names(api, default_model, dicom_sample):
    response = send(api, "x.dcm", (dicom_sample / "rsna_cr_pa_normal.dcm").read_bytes())
    assert response.status_code == 201
    body = response.json()
    xray = XRay.objects.get()
    assert body["patient"]["mrn"] == xray.patient.mrn and body["sop_instance_uid"] == xray.sop_instance_uid
    assert body["status"] == "done" and len(body["findings"]) == 14


@pytest.mark.django_db
def test_without_a_model_it_is_stored_as_pending_with_no_findings(api, patient, sample_images):
    response = send(api, "a.png", sample_images["px_64"].read_bytes(), patient=patient.pk)
    assert response.status_code == 201
    body = response.json()
    assert (body["status"], body["findings"], body["model_version"]) == ("pending", [], None)


@pytest.mark.django_db
def test_it_accepts_only_multipart_or_form_uploads(api, patient):
    response = api.post(XRAYS, {"patient": patient.pk}, format="json")
    assert response.status_code == 415
    assert not XRay.objects.exists()
