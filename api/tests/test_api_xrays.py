"""X-rays through the API: the worklist's filters and order, one X-ray with its findings (audited
as a view), its image through the image view, and the FHIR endpoint's refusal of unscored X-rays."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from diagnosis.pages.views import PAGE_SIZE
from diagnosis.readings import rules as readings
from diagnosis.records.models import AuditEvent, Prediction, XRay
from dispredo_core.findings import FINDINGS
from dispredo_site.testing.factories import make_xray

XRAYS = reverse("api:xray-list")
WORKLIST = reverse("diagnosis:worklist")


def ids(response):
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


@pytest.fixture
def worklist(patient, reader, tiny_model):
    """Pending, unread, draft and signed-off X-rays, two of them flagged, oldest to newest."""
    now = timezone.now()
    pending = make_xray(patient, uploaded_at=now - timedelta(hours=5))
    weak = make_xray(patient, version=tiny_model, flagged={"Effusion"}, uploaded_at=now - timedelta(hours=4))
    Prediction.objects.filter(xray=weak, finding="Effusion").update(probability=0.5)
    strong = make_xray(patient, version=tiny_model, flagged={"Effusion", "Mass"}, uploaded_at=now - timedelta(hours=3))
    draft = make_xray(patient, version=tiny_model, uploaded_at=now - timedelta(hours=2))
    signed = make_xray(patient, version=tiny_model, uploaded_at=now - timedelta(hours=1))
    readings.save_draft(draft, reader, {"Mass": "present"}, "")
    readings.sign_off(signed, reader, {name: "absent" for name in FINDINGS}, "")
    return {"pending": pending, "weak": weak, "strong": strong, "draft": draft, "signed": signed}


FILTERS = [
    {},
    {"status": "pending"},
    {"status": "done", "finding": "Effusion"},
    {"finding": "Mass"},
    {"reading": "awaiting"},
    {"reading": "unread"},
    {"reading": "draft"},
    {"reading": "signed"},
    {"sort": "triage"},
    {"sort": "triage", "reading": "awaiting"},
]


@pytest.mark.django_db
@pytest.mark.parametrize("query", FILTERS, ids=lambda q: "&".join(f"{k}={v}" for k, v in q.items()) or "none")
def test_it_lists_what_the_worklist_lists_for_each_filter(api, staff_client, worklist, query):
    page = staff_client.get(WORKLIST, query)
    assert ids(api.get(XRAYS, query)) == [xray.pk for xray in page.context["page"]]


@pytest.mark.django_db
def test_the_filters_and_order_select_the_right_xrays(api, worklist):
    x = worklist
    assert ids(api.get(XRAYS)) == [x["signed"].pk, x["draft"].pk, x["strong"].pk, x["weak"].pk, x["pending"].pk]
    assert ids(api.get(XRAYS, {"finding": "Effusion"})) == [x["strong"].pk, x["weak"].pk]
    assert ids(api.get(XRAYS, {"reading": "draft"})) == [x["draft"].pk]
    assert ids(api.get(XRAYS, {"sort": "triage"}))[:2] == [x["strong"].pk, x["weak"].pk]
    row = api.get(XRAYS, {"finding": "Mass"}).json()["results"][0]
    assert row["flagged"] == ["Effusion", "Mass"] and row["reading_state"] == "unread" and row["status"] == "done"
    draft_row = api.get(XRAYS, {"reading": "draft"}).json()["results"][0]
    assert draft_row["reading_state"] == "draft"


@pytest.mark.django_db
def test_it_refuses_filters_the_worklist_form_refuses(api, patient):
    response = api.get(XRAYS, {"status": "lost", "finding": "Effusion"})  # no active model: no finding offered
    assert response.status_code == 400
    assert response.json() == {
        "status": ["Select a valid choice. lost is not one of the available choices."],
        "finding": ["Select a valid choice. Effusion is not one of the available choices."],
    }


@pytest.mark.django_db
def test_a_nul_in_an_unknown_parameter_is_audited_as_the_replacement_character(api, patient):
    # PostgreSQL cannot store NUL in text; the audit detail keeps the parameters as sent otherwise.
    response = api.get(XRAYS, {"note\x00": "a\x00b"})
    assert response.status_code == 200
    event = AuditEvent.objects.get(object_type="worklist")
    assert event.detail == "API; filters note\ufffd=a\ufffdb; page 1"


@pytest.mark.django_db
def test_it_pages_the_list(api, patient):
    for _ in range(PAGE_SIZE + 1):
        make_xray(patient)
    first = api.get(XRAYS).json()
    assert first["count"] == PAGE_SIZE + 1 and len(first["results"]) == PAGE_SIZE
    assert len(api.get(first["next"]).json()["results"]) == 1


@pytest.mark.django_db
def test_an_xray_is_answered_with_its_findings_and_the_view_is_audited(api, worklist, tiny_model):
    xray = worklist["draft"]
    response = api.get(reverse("api:xray-detail", args=[xray.pk]))

    assert response.status_code == 200
    body = response.json()
    assert body["reading_state"] == "draft" and body["model_version"]["name"] == tiny_model.name
    assert [f["finding"] for f in body["findings"]] == list(FINDINGS)
    views = AuditEvent.objects.filter(action="view")
    assert list(views.values_list("username", "object_type", "object_id")) == [("nurse", "xray", xray.pk)]
    assert api.get(reverse("api:xray-detail", args=[xray.pk + 100])).status_code == 404


@pytest.mark.django_db
def test_the_image_is_sent_by_the_image_view_itself(api, staff_client, patient, tiny_model, sample_images):
    content = sample_images["px_64"].read_bytes()
    upload = api.post(XRAYS, {"patient": patient.pk, "image": SimpleUploadedFile("a.png", content)}, format="multipart")
    xray = XRay.objects.get()

    response = api.get(upload.json()["links"]["image"], HTTP_ACCEPT="image/png")

    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content) == content
    page = staff_client.get(reverse("diagnosis:xray_image", args=[xray.pk]))
    assert {h: response.get(h) for h in ("Cache-Control", "X-Content-Type-Options")} == {
        h: page.get(h) for h in ("Cache-Control", "X-Content-Type-Options")
    }


@pytest.mark.django_db
def test_a_dicom_image_is_sent_as_png(api, default_model, dicom_sample):
    path = dicom_sample / "rsna_cr_pa_normal.dcm"
    api.post(XRAYS, {"image": SimpleUploadedFile(path.name, path.read_bytes())}, format="multipart")
    response = api.get(reverse("api:xray-image", args=[XRay.objects.get().pk]))
    assert response["Content-Type"] == "image/png" and response.content.startswith(b"\x89PNG")


@pytest.mark.django_db
def test_a_missing_image_is_a_json_404_whatever_the_client_accepts(api, patient):
    response = api.get(reverse("api:xray-image", args=[999]), HTTP_ACCEPT="image/png")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    gone = make_xray(patient)
    gone.image.delete(save=False)
    assert api.get(reverse("api:xray-image", args=[gone.pk])).json() == {"detail": "The image file of this X-ray is missing."}


@pytest.mark.django_db
def test_an_unscored_xray_has_no_fhir_report(api, patient):
    xray = make_xray(patient)
    response = api.get(reverse("api:xray-fhir", args=[xray.pk]))
    assert response.status_code == 409
    assert response.json() == {
        "detail": f"X-ray {xray.pk} has no FHIR report. Pending: no model was installed when this X-ray was "
        "uploaded, and none is active now. It is scored once a model version is active (manage.py rescore)."
    }
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_a_scored_xray_gives_its_fhir_bundle_and_the_view_is_audited(api, patient, tiny_model):
    xray = make_xray(patient, version=tiny_model, flagged={"Effusion"})
    response = api.get(reverse("api:xray-fhir", args=[xray.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "application/fhir+json"
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle"
    kinds = [entry["resource"]["resourceType"] for entry in bundle["entry"]]
    assert kinds.count("DiagnosticReport") == 1 and kinds.count("Observation") == 14
    event = AuditEvent.objects.get()
    assert (event.action, event.object_type, event.object_id, event.detail) == ("view", "xray", xray.pk, "FHIR report")
