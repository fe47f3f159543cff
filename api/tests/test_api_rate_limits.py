"""Per-user rate limits, set in settings, answered 429 with Retry-After."""


import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from diagnosis.records.models import XRay
from dispredo_site.testing.helpers import bearer, start_refusal

PATIENTS = reverse("api:patient-list")
XRAYS = reverse("api:xray-list")


@pytest.mark.django_db
def test_requests_over_the_users_rate_are_answered_429(api, settings, django_user_model, token_of):
    settings.DISPREDO_API_REQUEST_RATE = "3/min"
    assert [api.get(PATIENTS).status_code for _ in range(4)] == [200, 200, 200, 429]
    refused = api.get(PATIENTS)
    assert refused.status_code == 429 and 0 < int(refused["Retry-After"]) <= 60
    assert refused.json()["detail"].startswith("Request was throttled.")
    # Another user has a count of their own.
    colleague = APIClient()
    colleague.credentials(**bearer(token_of(django_user_model.objects.create_user("colleague", is_staff=True))))
    assert colleague.get(PATIENTS).status_code == 200


@pytest.mark.django_db
def test_uploads_have_a_lower_rate_of_their_own(api, settings, patient, sample_images):
    settings.DISPREDO_API_UPLOAD_RATE = "2/hour"
    content = sample_images["px_64"].read_bytes()

    def upload():
        return api.post(XRAYS, {"patient": patient.pk, "image": SimpleUploadedFile("a.png", content)}, format="multipart")

    assert [upload().status_code for _ in range(3)] == [201, 201, 429]
    assert XRay.objects.count() == 2
    assert api.get(XRAYS).status_code == 200  # reading is not an upload


@pytest.mark.django_db
def test_token_requests_with_a_password_are_limited_per_address(anonymous_api, settings, staff):
    settings.DISPREDO_API_SIGN_IN_RATE = "2/min"
    data = {"username": "nurse", "password": "wrong", "name": "guess"}
    statuses = [anonymous_api.post(reverse("api:token-list"), data).status_code for _ in range(3)]
    assert statuses == [401, 401, 429]
    right = {"username": "nurse", "password": "correct horse battery", "name": "RIS"}
    assert anonymous_api.post(reverse("api:token-list"), right).status_code == 429


def test_a_bad_rate_in_the_environment_stops_the_start_with_a_clear_message():
    assert "DISPREDO_API_UPLOAD_RATE must be a rate such as 120/min (per s, min, hour or day), not 'lots'." in start_refusal(DISPREDO_API_UPLOAD_RATE="lots")
