import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from diagnosis.intake.content import INVALID_IMAGE_MESSAGE
from diagnosis.records.models import AuditEvent, Patient, Prediction, XRay, XRayStatus
from dispredo_core.findings import FINDINGS
from dispredo_site.testing.helpers import stored_files
from dispredo_site.testing.upload_files import INVALID_UPLOADS

UPLOAD = reverse("diagnosis:upload")


def upload_file(client, patient, name, content, **extra):
    data = {"patient": patient.pk, "image": SimpleUploadedFile(name, content), **extra}
    return client.post(UPLOAD, data)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["rgba_1024", "px_256", "px_64"])
def test_it_stores_a_real_xray_and_its_14_predictions(staff_client, staff, patient, tiny_model, sample_images, private_media, kind):
    path = sample_images[kind]
    content = path.read_bytes()

    response = upload_file(staff_client, patient, path.name, content, view_position="PA", clinical_note="Cough")

    xray = XRay.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("diagnosis:xray_detail", args=[xray.pk])
    assert xray.status == XRayStatus.DONE
    assert xray.patient == patient and xray.uploaded_by == staff
    assert xray.original_name == path.name
    assert xray.view_position == "PA" and xray.clinical_note == "Cough"
    with Image.open(path) as image:
        assert (xray.width, xray.height) == image.size
    assert xray.sha256 == XRay.digest(content)
    # Stored under a generated name in the private media root, with the exact bytes uploaded.
    files = stored_files(private_media)
    assert len(files) == 1 and path.name not in str(files[0])
    assert files[0].read_bytes() == content
    predictions = Prediction.objects.filter(xray=xray)
    assert sorted(p.finding for p in predictions) == sorted(FINDINGS)
    for prediction in predictions:
        assert 0.0 <= prediction.probability <= 1.0
        assert prediction.flagged == (prediction.probability >= tiny_model.thresholds[prediction.finding])
        assert prediction.model_version == tiny_model


@pytest.mark.django_db
def test_it_creates_the_patient_in_the_same_step(staff_client, staff, tiny_model, sample_images):
    path = sample_images["px_64"]
    response = staff_client.post(
        UPLOAD,
        {
            "new_mrn": " mrn-777 ",  # kept as given, without the spaces around it
            "new_name": "Grace  Hopper",
            "new_sex": "F",
            "new_date_of_birth": "1906-12-09",
            "image": SimpleUploadedFile(path.name, path.read_bytes()),
        },
    )
    assert response.status_code == 302
    patient = Patient.objects.get()
    assert (patient.mrn, patient.name, str(patient.date_of_birth)) == ("mrn-777", "Grace Hopper", "1906-12-09")
    assert patient.created_by == staff
    assert XRay.objects.get().patient == patient
    assert list(AuditEvent.objects.order_by("pk").values_list("action", "object_type")) == [
        ("create", "patient"), ("create", "xray")
    ]


@pytest.mark.django_db
def test_it_requires_a_patient(staff_client, tiny_model, sample_images):
    path = sample_images["px_64"]
    response = staff_client.post(UPLOAD, {"image": SimpleUploadedFile(path.name, path.read_bytes())})
    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        "Choose a patient, or enter a new patient's record number and name."
    ]
    assert XRay.objects.count() == 0


@pytest.mark.django_db
def test_a_new_patient_with_a_taken_record_number_is_refused(staff_client, patient, sample_images, private_media):
    path = sample_images["px_64"]
    response = staff_client.post(
        UPLOAD,
        {"new_mrn": patient.mrn, "new_name": "Someone Else", "image": SimpleUploadedFile(path.name, path.read_bytes())},
    )
    assert response.status_code == 200
    assert response.context["form"].errors["new_mrn"] == ["Patient with this Medical record number already exists."]
    assert Patient.objects.count() == 1 and XRay.objects.count() == 0
    assert stored_files(private_media) == []


@pytest.mark.django_db
@pytest.mark.parametrize("label", INVALID_UPLOADS)
def test_it_rejects_invalid_uploads_and_keeps_nothing(staff_client, patient, tiny_model, private_media, label):
    name, content = INVALID_UPLOADS[label]

    response = upload_file(staff_client, patient, name, content)

    assert response.status_code == 200
    assert response.context["form"].errors["image"] == [INVALID_IMAGE_MESSAGE]
    assert INVALID_IMAGE_MESSAGE in response.content.decode()
    assert XRay.objects.count() == 0 and Prediction.objects.count() == 0
    assert stored_files(private_media) == []


@pytest.mark.django_db
def test_a_truncated_real_xray_is_rejected(staff_client, patient, tiny_model, sample_images, private_media):
    content = sample_images["gray_1024"].read_bytes()
    response = upload_file(staff_client, patient, "cut.png", content[: len(content) // 2])
    assert response.context["form"].errors["image"] == [INVALID_IMAGE_MESSAGE]
    assert XRay.objects.count() == 0 and stored_files(private_media) == []


@pytest.mark.django_db
def test_without_a_model_the_xray_is_stored_as_pending(staff_client, patient, sample_images):
    path = sample_images["px_256"]
    response = upload_file(staff_client, patient, path.name, path.read_bytes())
    xray = XRay.objects.get()
    assert xray.status == XRayStatus.PENDING and xray.predictions.count() == 0
    page = staff_client.get(response["Location"])
    assert "Pending: no model was installed" in page.content.decode()


@pytest.mark.django_db
def test_the_upload_page_shows_a_placeholder_before_a_file_is_chosen(staff_client, patient, tiny_model):
    response = staff_client.get(UPLOAD + f"?patient={patient.pk}")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="preview" src="/static/img/placeholder.svg"' in html
    # The browser's file input says "No file chosen" itself: the page does not say it a second time.
    assert "No file chosen" not in html and 'id="file-name" class="muted" aria-live="polite"></p>' in html
    assert response.context["form"].initial["patient"] == str(patient.pk)


@pytest.mark.django_db
def test_a_refusal_of_the_files_content_is_the_only_error_shown(staff_client, tiny_model, private_media):
    name, content = INVALID_UPLOADS["text named .png"]
    response = staff_client.post(UPLOAD, {"image": SimpleUploadedFile(name, content), "new_date_of_birth": "someday"})
    assert response.status_code == 200
    assert response.context["form"].errors == {"image": [INVALID_IMAGE_MESSAGE]}
    assert not Patient.objects.exists() and stored_files(private_media) == []


@pytest.mark.django_db
def test_with_a_readable_file_the_other_fields_errors_are_shown(staff_client, tiny_model, sample_images, private_media):
    path = sample_images["px_64"]
    response = staff_client.post(
        UPLOAD,
        {"image": SimpleUploadedFile(path.name, path.read_bytes()), "new_mrn": "X-1", "new_name": "A", "new_date_of_birth": "someday"},
    )
    assert response.status_code == 200
    assert response.context["form"].errors == {"new_date_of_birth": ["Enter a valid date."]}
    assert not Patient.objects.exists() and stored_files(private_media) == []
    assert AuditEvent.objects.get().detail == "the upload page: invalid: Enter a valid date."
